"""Datadog block: API and application keys, site, and an optional intake/proxy URL."""

from __future__ import annotations

from typing import Any

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.rest import RESTClientObject
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.cache import cached_client
from blocks.egress.urllib3_pools import guard_pool_manager

# An export sends up to ``config.concurrency`` (at most 8) pages at once through one client; the
# library's pool keeps 4 connections per host and discards the others after each request.
POOL_CONNECTIONS_PER_HOST = 8


class PooledApiClient(ApiClient):
    """``ApiClient`` whose urllib3 pool keeps ``POOL_CONNECTIONS_PER_HOST`` connections per host
    (the hook the library's own ``ThreadedApiClient`` uses to size its pool) and checks every
    connection against the egress policy."""

    def _build_rest_client(self) -> RESTClientObject:
        rest = RESTClientObject(self.configuration, maxsize=POOL_CONNECTIONS_PER_HOST)
        guard_pool_manager(rest.pool_manager)
        return rest


class DatadogConnection(Block):
    """Credentials and site for the official ``datadog-api-client``.

    Example:
        ```python
        from datadog_api_client.v2.api.logs_api import LogsApi
        from blocks.datadog import DatadogConnection
        logs = LogsApi(DatadogConnection.load("modelpulse-export-exp-01...").get_client())
        ```
    """

    _block_type_name = "ModelPulse Datadog Connection"
    _block_type_slug = "modelpulse-datadog-connection"
    _description = "Datadog API/application keys and site for ModelPulse exports."

    api_key: SecretStr = Field(title="API key")
    app_key: SecretStr = Field(title="Application key")
    site: str = Field(default="datadoghq.com", title="Site", description="e.g. datadoghq.eu")
    api_url: str | None = Field(
        default=None, title="API URL", description="Send every request here instead (a proxy)."
    )

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> DatadogConnection:
        return cls(
            api_key=credentials["api_key"],
            app_key=credentials["app_key"],
            site=config.get("site") or "datadoghq.com",
            api_url=config.get("api_url"),
        )

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.api_key.get_secret_value(), "app_key": self.app_key.get_secret_value()}

    def configuration(self, timeout: float = 30.0) -> Configuration:
        """The client's configuration; ``timeout`` bounds connecting and each read (the library's
        default is no timeout at all)."""
        configuration = Configuration(
            request_timeout=(timeout, timeout),
            api_key={
                "apiKeyAuth": self.api_key.get_secret_value(),
                "appKeyAuth": self.app_key.get_secret_value(),
            },
            server_variables={"site": self.site},
        )
        if self.api_url:
            # Every operation (logs intake included) goes to the override, like a proxy would.
            configuration.host = self.api_url.rstrip("/")
        configuration.enable_retry = False  # retries belong to our tasks, which honour rate limits
        return configuration

    def get_client(self, timeout: float = 30.0) -> ApiClient:
        """An ``ApiClient`` built from this block, cached per block content and timeout."""
        return cached_client(
            self, {"timeout": timeout}, lambda options: PooledApiClient(self.configuration(options["timeout"]))
        )
