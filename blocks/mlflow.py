"""MLflow tracking server block: URI plus optional basic auth or bearer token."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


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

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> MlflowConnection:
        return cls(
            tracking_uri=config["tracking_uri"],
            username=credentials.get("username"),
            password=credentials.get("password"),
            token=credentials.get("token"),
        )

    def credentials(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "token": self.token.get_secret_value() if self.token else None,
        }
