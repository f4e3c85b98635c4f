"""MLflow tracking server block: URI plus optional basic auth or bearer token.

Credentials and MLflow: the MLflow client reads its credentials from process-wide environment
variables (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``), which would leak one integration's
credentials into every other integration served by the same process (and into every subprocess it
starts). Instead, ``get_client()`` returns an ``MlflowClient`` whose every method runs inside a
*credential scope*: a ``ContextVar`` holding this block's ``Authorization`` header value, read by a
request-header provider registered once with MLflow. The header therefore exists only for the
duration of the call, only in the calling thread/context, never in ``os.environ`` and never in a log
line (the value stays a ``SecretStr`` until the provider renders it for the request).

Timeouts: MLflow's defaults (120 s per request, 7 retries with exponential backoff) would keep an
API request hanging for minutes on an unreachable server. Unless the operator set them, the client side
defaults them to 10 s and 1 retry (``MLFLOW_HTTP_REQUEST_TIMEOUT``,
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``); our tasks add their own retries on top.

The client side (the credential scope, the egress guard, the timeouts) is ``blocks.mlflow_client``,
imported by ``get_client()``: ``import mlflow`` costs ~1.3 s of CPU and ~100 MB (scipy, pandas,
pyarrow), and the API and the flows import this block class without calling MLflow.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.cache import cached_client

if TYPE_CHECKING:
    from mlflow import MlflowClient


class MlflowConnection(Block):
    """Where and how to reach an MLflow tracking server.

    Example:
        ```python
        from blocks.mlflow import MlflowConnection
        client = MlflowConnection.load("modelpulse-integration-int-01...").get_client()
        client.search_registered_models()
        ```
    """

    _block_type_name = "ModelPulse MLflow Connection"
    _block_type_slug = "modelpulse-mlflow-connection"
    _description = "MLflow tracking server URI and optional credentials."

    tracking_uri: str = Field(title="Tracking URI", description="e.g. http://mlflow-server:5000")
    username: str | None = Field(default=None, title="Username")
    password: SecretStr | None = Field(default=None, title="Password")
    token: SecretStr | None = Field(default=None, title="Token")
    webhook_secret: SecretStr | None = Field(
        default=None,
        title="Webhook secret",
        description="Signs the deliveries of the MLflow webhook ModelPulse registered (generated, never shown).",
    )

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> MlflowConnection:
        return cls(
            tracking_uri=config["tracking_uri"],
            username=credentials.get("username"),
            password=credentials.get("password"),
            token=credentials.get("token"),
            webhook_secret=credentials.get("webhook_secret"),
        )

    def credentials(self) -> dict[str, Any]:
        """The secrets the API takes and masks (the generated webhook secret is not one of them)."""
        return {
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "token": self.token.get_secret_value() if self.token else None,
        }

    def authorization(self) -> SecretStr | None:
        """The ``Authorization`` header value: basic auth if a username is set, else the bearer token."""
        if self.username and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            return SecretStr(f"Basic {base64.b64encode(pair).decode()}")
        if self.token is not None:
            return SecretStr(f"Bearer {self.token.get_secret_value()}")
        return None

    def get_client(self) -> MlflowClient:
        """An ``MlflowClient`` for this server whose calls carry this block's credentials only."""
        from blocks.mlflow_client import CredentialScopedMlflowClient

        return cached_client(
            self, {}, lambda _options: CredentialScopedMlflowClient(self.tracking_uri, self.authorization())
        )
