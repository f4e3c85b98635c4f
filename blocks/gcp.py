"""Vertex AI integrations reuse ``prefect_gcp.GcpCredentials``; this maps our fields onto it."""

from __future__ import annotations

from typing import Any

from prefect_gcp import GcpCredentials


def gcp_credentials_from_settings(config: dict[str, Any], credentials: dict[str, Any]) -> GcpCredentials:
    """Build the block from an integration's config (project) and service-account JSON."""
    return GcpCredentials(
        service_account_info=credentials["service_account_info"], project=config["project_id"]
    )


def gcp_credentials_values(block: GcpCredentials) -> dict[str, Any]:
    info = block.service_account_info
    return {"service_account_info": info.get_secret_value() if info else None}
