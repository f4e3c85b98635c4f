"""What the integration tests check in ModelPulse's own database, and how they run the sync flow."""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from sqlalchemy import select

from flows.sync_registry import sync_registry
from store.db import session_scope
from store.models import Event, MonitoredModel


def model_registered_events(database_url: str, integration_id: str) -> list[dict[str, Any]]:
    """The ``data`` of every ``model.registered`` event in the outbox for this integration."""
    with session_scope(database_url) as session:
        events = session.scalars(select(Event).where(Event.type == "model.registered").order_by(Event.id))
        return [e.data for e in events if e.data["integration_id"] == integration_id]


def monitored(database_url: str, integration_id: str) -> list[tuple[str, str, str]]:
    """(name, version, source) of every monitored version of the integration."""
    with session_scope(database_url) as session:
        rows = session.scalars(
            select(MonitoredModel).where(MonitoredModel.integration_id == integration_id).order_by(MonitoredModel.id)
        )
        return [(row.name, row.version, row.source) for row in rows]


def ensure_sync_deployment() -> None:
    """The ``sync-registry/registry-sync`` deployment that ``POST .../sync`` runs (no worker here)."""
    sync_registry.to_deployment(name="registry-sync").apply()


def run_synced_flow_run(flow_run_id: str) -> Any:
    """Execute a ``sync-registry`` flow run created by the API in this process, as a worker would."""
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    assert flow_run.parameters, "the API must pass the integration id as a parameter"
    return run_flow(sync_registry, flow_run=flow_run, parameters=flow_run.parameters)


T = TypeVar("T")



def integration_id_of(base_url: str) -> str:
    return base_url.rsplit("/", 1)[-1]
