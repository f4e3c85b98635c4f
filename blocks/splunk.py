"""Splunk HTTP Event Collector block. HEC is plain HTTPS, so the client is an ``httpx.Client``."""

from __future__ import annotations

from typing import Any

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.cache import cached_client
from blocks.egress import GuardedSyncTransport


class SplunkHecConnection(Block):
    """Where and how to reach a Splunk HTTP Event Collector.

    Example:
        ```python
        from blocks.splunk import SplunkHecConnection
        hec = SplunkHecConnection.load("modelpulse-export-exp-01...").get_client()
        hec.post("/services/collector/event", content=b"...")
        ```
    """

    _block_type_name = "ModelPulse Splunk HEC Connection"
    _block_type_slug = "modelpulse-splunk-hec-connection"
    _description = "Splunk HTTP Event Collector URL and token for ModelPulse exports."

    hec_url: str = Field(title="HEC URL", description="e.g. https://splunk.example.com:8088")
    hec_token: SecretStr = Field(title="HEC token")
    verify_ssl: bool = Field(default=True, title="Verify SSL")

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> SplunkHecConnection:
        return cls(
            hec_url=config["hec_url"],
            hec_token=credentials["hec_token"],
            verify_ssl=config.get("verify_ssl", True),
        )

    def credentials(self) -> dict[str, Any]:
        return {"hec_token": self.hec_token.get_secret_value()}

    def get_client(self, timeout: float = 30.0) -> httpx.Client:
        """An ``httpx.Client`` with the HEC base URL and ``Authorization: Splunk <token>``."""
        return cached_client(self, {"timeout": timeout}, self._make_client)

    def _make_client(self, options: dict[str, Any]) -> httpx.Client:
        return httpx.Client(
            base_url=self.hec_url.rstrip("/"),
            headers={"Authorization": f"Splunk {self.hec_token.get_secret_value()}"},
            transport=GuardedSyncTransport(verify=self.verify_ssl),  # the egress policy at each connect
            timeout=options["timeout"],
        )
