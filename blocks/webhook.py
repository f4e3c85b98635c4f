"""Webhook secrets block: the Standard Webhooks signing secret(s), custom header values, and the
secrets of the other formats: a Slack or Teams webhook URL (the URL is the credential) and a
PagerDuty routing key."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field, SecretStr


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSecrets(Block):
    """Everything secret about one webhook subscription.

    During a rotation the previous secret keeps signing until ``previous_expires_at``.

    Example:
        ```python
        from blocks.webhook import WebhookSecrets
        secrets = WebhookSecrets.load("modelpulse-webhook-wh-01...")
        ```
    """

    _block_type_name = "ModelPulse Webhook Secrets"
    _block_type_slug = "modelpulse-webhook-secrets"
    _description = (
        "Signing secret(s), custom header values, and the secret URL (Slack, Teams) or routing key "
        "(PagerDuty) of a ModelPulse webhook."
    )

    signing_secret: SecretStr = Field(title="Signing secret", description="whsec_...")
    previous_signing_secret: SecretStr | None = Field(default=None, title="Previous signing secret")
    previous_expires_at: datetime | None = Field(default=None, title="Previous secret expires at")
    headers: SecretDict = Field(default_factory=lambda: SecretDict({}), title="Custom headers")
    url: SecretStr | None = Field(
        default=None, title="Secret URL", description="Slack / Teams: the webhook URL, which is itself the credential."
    )
    routing_key: SecretStr | None = Field(
        default=None, title="Routing key", description="PagerDuty: the Events API v2 integration (routing) key."
    )

    def header_values(self) -> dict[str, str]:
        return dict(self.headers.get_secret_value())

    def active_signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign right now, newest first."""
        active = [self.signing_secret.get_secret_value()]
        if self.previous_signing_secret and self.previous_expires_at and now < self.previous_expires_at:
            active.append(self.previous_signing_secret.get_secret_value())
        return active

    def secret_url(self) -> str | None:
        """The real URL of a format whose URL is secret (the database holds a masked one)."""
        return self.url.get_secret_value() if self.url else None

    def routing_key_value(self) -> str | None:
        return self.routing_key.get_secret_value() if self.routing_key else None

    def credentials(self) -> dict[str, Any]:
        values = {"signing_secret": self.signing_secret.get_secret_value(), "headers": self.header_values()}
        if self.url:
            values["url"] = self.url.get_secret_value()
        if self.routing_key:
            values["routing_key"] = self.routing_key.get_secret_value()
        return values

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> WebhookSecrets:
        return cls(
            signing_secret=credentials["signing_secret"],
            headers=credentials.get("headers") or {},
            url=credentials.get("url"),
            routing_key=credentials.get("routing_key"),
        )
