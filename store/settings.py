"""Settings read from the environment (``MODELPULSE_*``), with embedded defaults for a laptop."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the integrations layer; each field maps to ``MODELPULSE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MODELPULSE_", extra="ignore")

    home: Path = Field(default=Path(".modelpulse"), description="Databases, Prefect home and logs.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under `home` when unset."
    )
    api_port: int = Field(default=8000, description="Port of the REST API (127.0.0.1).")
    prefect_port: int = Field(default=4200, description="Port of the Prefect server and UI.")
    work_pool: str = Field(default="modelpulse", description="Prefect process work pool name.")
    allow_private_webhook_targets: bool = Field(
        default=False, description="Allow webhook URLs on loopback/private networks (demos, tests)."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest request body the API reads (bytes); a larger one is answered 413 unread.",
    )
    max_inference_log_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest `POST .../inference-logs` body (bytes): a batch of up to 10,000 records.",
    )
    export_event_settle_seconds: float = Field(
        default=60.0,
        description="Exports ship an event once its id is this old: an event id is made before its "
        "transaction commits, so a younger one could still be followed by an older one.",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'modelpulse.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
