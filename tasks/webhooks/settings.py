"""Delivery knobs (``MODELPULSE_WEBHOOK_*``), separate from the store's settings."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Svix's schedule: the delay before each retry, after the first attempt failed.
DEFAULT_RETRY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


class WebhookSettings(BaseSettings):
    """How deliveries are sent and retried; each field maps to ``MODELPULSE_WEBHOOK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MODELPULSE_WEBHOOK_", extra="ignore")

    timeout_seconds: float = Field(default=15.0, description="A 2xx must arrive within this time.")
    retry_schedule: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        description="Seconds before each retry (JSON list); its length is the number of retries.",
    )
    disable_after_days: float = Field(
        default=5.0, description="Disable a webhook after this many days of nothing but failures."
    )
    concurrency: int = Field(
        default=100, description="Deliveries in flight at once (across all of the dispatcher's fan-outs)."
    )
    max_idle_clients: int = Field(
        default=200,
        ge=1,
        description="HTTP clients (one per receiver origin, with its kept-alive connections) a "
        "dispatcher keeps open between sends; beyond this, the least recently used are closed as "
        "soon as nothing is sent through them.",
    )
    inline_retry_seconds: float = Field(
        default=10.0,
        description="A retry due within this many seconds is made by the same unit of work "
        "(after a short wait); later ones are parked in the database for the retry sweep.",
    )
    lease_margin_seconds: float = Field(
        default=60.0,
        ge=1.0,
        description="Added to a delivery's lease (its timeouts and inline retry): a sender that died "
        "mid-attempt has its deliveries taken over by the retry sweep this long after they could "
        "have finished.",
    )
    stranded_after_seconds: float = Field(
        default=30.0,
        description="An outbox event still undispatched after this long is dispatched by the sweep.",
    )
    history_days: float = Field(
        default=30.0,
        description="Settled deliveries (succeeded or failed) and their attempts are deleted once "
        "this many days old; open ones are kept until they settle.",
    )
    user_agent: str = Field(default="ModelPulse-Webhooks/1.0")

    def stranded_before(self, now: datetime) -> datetime:
        """An event written before this and still undispatched (or not emitted to Prefect) is the sweep's."""
        return now - timedelta(seconds=self.stranded_after_seconds)

    def history_before(self, now: datetime) -> datetime:
        """Settled deliveries created before this are deleted."""
        return now - timedelta(days=self.history_days)


@lru_cache
def get_webhook_settings() -> WebhookSettings:
    return WebhookSettings()
