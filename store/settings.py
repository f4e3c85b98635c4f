"""Settings read from the environment (``MODELPULSE_*``), with embedded defaults for a laptop."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Every knob of the integrations layer; each field maps to ``MODELPULSE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MODELPULSE_", extra="ignore")

    home: Path = Field(default=Path(".modelpulse"), description="Databases, Prefect home and logs.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under `home` when unset."
    )
    api_port: int = Field(default=8000, description="Port of the REST API.")
    prefect_port: int = Field(default=4200, description="Port of the Prefect server and UI.")
    bind_host: str = Field(
        default="127.0.0.1",
        description="Address the API and the Prefect server listen on; another machine's processes "
        "need an address they can reach (e.g. 0.0.0.0 behind a firewall).",
    )
    prefect_api_url: str | None = Field(
        default=None,
        description="A Prefect server run elsewhere (`http://host:4200/api`); `up` then starts none.",
    )
    prefect_database_url: str | None = Field(
        default=None,
        description="The Prefect server's database (`postgresql+asyncpg://...`); SQLite under `home` when unset.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the Prefect server's messaging, cache, ordering, leases and docket; its "
        "background services then run as their own process.",
    )
    workers: int = Field(default=1, ge=0, le=64, description="Prefect process workers `up` runs here.")
    worker_runs: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Flow runs one worker runs at once (`prefect worker start --limit`); the rest wait their turn.",
    )
    sweep_check_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="How often each worker checks whether a sweep (`retry-due-deliveries`, `registry-sync`, "
        "`run-monitors`) has work and starts its deployment if so (at most once a minute per sweep); a "
        "sweep with nothing to do is not run. Each sweep's Prefect schedule (every 10 minutes) is the "
        "backstop. 0 turns the checks off: the sweeps then run on their schedules alone; otherwise at least 1.",
    )
    dispatchers: int = Field(default=1, ge=0, le=64, description="Webhook dispatchers `up` runs here.")
    api_workers: int = Field(default=2, ge=1, le=64, description="gunicorn worker processes of the API.")
    api_keepalive_seconds: int = Field(
        default=90,
        ge=1,
        le=3600,
        description="How long the API keeps an idle keep-alive connection open: longer than any load "
        "balancer in front of it keeps its own (AWS ALB 60 s, nginx 75 s), or the balancer reuses a "
        "connection the API has just closed and answers 502.",
    )
    work_pool: str = Field(default="modelpulse", description="Prefect process work pool name.")
    flow_heartbeat_seconds: int = Field(
        default=30,
        ge=30,  # Prefect's own minimum
        le=3600,
        description="Every flow run sends a heartbeat this often; a run silent for three intervals is "
        "marked Crashed (its worker died), which lets the export's next run take over. Set the same "
        "value on every machine.",
    )
    allow_private_webhook_targets: bool = Field(
        default=False,
        description="Let every outbound connection (webhooks, sinks, registries) reach every private "
        "network, loopback included (demos, tests); link-local and metadata addresses stay refused.",
    )
    allowed_private_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated CIDRs that outbound connections may reach although they are not public "
        "(`10.0.0.0/8,192.168.5.0/24,127.0.0.1/32`): where sinks and registries live on private networks, "
        "production needs this. Link-local and metadata addresses open only to a CIDR inside their range "
        "(`169.254.169.254/32`), never to a broad one.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where users and registries reach ModelPulse (`https://modelpulse.example.com`): Slack, "
        "Teams and PagerDuty messages link back to it, and it is the base of the inbound URLs that MLflow "
        "webhooks and EventBridge API destinations post to (push events, `config.push_events`, need it).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, `GET /metrics` answers only a scrape that sends it as `Authorization: Bearer "
        "<token>` (Prometheus: `authorization: {credentials: ...}`); unset, `/metrics` is open like `/health`.",
    )
    rate_limit_per_minute: int = Field(
        default=6000,
        ge=0,
        description="Requests per minute per API key, counted across every API process; 0 disables the limit.",
    )
    auth_failures_per_minute: int = Field(
        default=30,
        ge=0,
        description="Refused API keys per minute per client address (the request's peer address, "
        "`remote_addr`), counted across every API process; past it that address is answered 429 "
        "before any key lookup until the minute ends. 0 disables the limit.",
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=10,
        description="How many proxies (load balancers) in front of the API append to `X-Forwarded-For`: "
        "the client address is then read from that header, this many entries from its end (werkzeug's "
        "ProxyFix). 0: the header is ignored and the TCP peer is the client.",
    )
    sink_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Every request to an export sink must connect, and each read of its answer "
        "arrive, within this many seconds.",
    )
    sink_page_deadline_seconds: float = Field(
        default=300.0,
        gt=0,
        description="One attempt at shipping a page (all its requests and the sink's own retries) "
        "must end within this many seconds, however slowly the sink trickles its answers.",
    )
    sink_retry_backoff_seconds: float = Field(
        default=2.0,
        ge=0,
        description="A page whose attempt failed is tried again after this many seconds, then after "
        "twice and four times as long (each with up to 50% jitter), before its run fails.",
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

    @field_validator("sweep_check_seconds")
    @classmethod
    def _check_sweeps_off_or_at_least_a_second(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("0 (off) or at least 1 second: each check reads the database")
        return value

    @field_validator(
        "database_url", "prefect_api_url", "prefect_database_url", "redis_url", "public_url", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # `VAR=` in a compose file or a unit means "not set"

    @field_validator("allowed_private_networks", mode="before")
    @classmethod
    def _comma_separated_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("public_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or "?" in value or "#" in value:
            raise ValueError("must be an http:// or https:// base URL without query or fragment")
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'modelpulse.db').resolve()}"

    @property
    def resolved_prefect_database_url(self) -> str:
        if self.prefect_database_url:
            return self.prefect_database_url
        return f"sqlite+aiosqlite:///{(self.home / 'prefect' / 'prefect.db').resolve()}"

    @property
    def resolved_prefect_api_url(self) -> str:
        """The Prefect API every process talks to: the one given, or the server `up` starts here."""
        if self.prefect_api_url:
            return self.prefect_api_url.rstrip("/")
        host = "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host  # its own server
        return f"http://{host}:{self.prefect_port}/api"


@lru_cache
def get_settings() -> Settings:
    return Settings()
