"""``monitor-endpoints``: record each SageMaker / Vertex AI endpoint's status when it changes."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.registry_tasks import record_endpoint_statuses


@flow(name="monitor-endpoints")
def monitor_endpoints(integration_id: str) -> list[dict[str, Any]]:
    """Read the integration's endpoints and record those whose status or deployments changed."""
    return record_endpoint_statuses(integration_id)
