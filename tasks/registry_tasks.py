"""Prefect tasks for the registry flows: call a platform through its connector, record the outcome.

Platform calls retry with backoff; recording is idempotent (a version already recorded is not
recorded again), so a retried task never duplicates a monitored model or its ``model.registered``.
Tasks take record ids and load the integration and its block themselves, so no secret ever becomes
a task or flow-run parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import task
from prefect.runtime import flow_run
from sqlalchemy import select

from store import registry as registry_store
from store.db import session_scope
from store.metrics import REGISTRY_SYNCS
from store.models import Integration, MonitoredModel, utcnow
from store.registry import (
    integrations_due_for_sync,
    monitored_versions,
    reconcile_version_labels,
    record_endpoint_status,
    record_model_version,
)
from tasks.registries import RegistryError, RegistryRefused, open_registry
from tasks.retries import retry_unless

DEFAULT_SYNC_INTERVAL_SECONDS = 900
# EventBridge retries a delivery for up to 24 h; MLflow's replays are refused after 5 minutes anyway.
INBOUND_RECEIPT_RETENTION_SECONDS = 48 * 3600
ENDPOINT_TYPES = ("sagemaker", "vertex_ai")
# Each client has connect/read timeouts, but a platform trickling its answers passes every read
# timeout; these bound one attempt of each platform task (Prefect interrupts it and retries).
# Generous: a Vertex AI upload alone may wait 600 s for its long-running operation.
REGISTER_ATTEMPT_TIMEOUT_SECONDS = 1200
SYNC_ATTEMPT_TIMEOUT_SECONDS = 1800
ENDPOINTS_ATTEMPT_TIMEOUT_SECONDS = 600


def _integration(integration_id: str) -> Integration:
    with session_scope() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise ValueError(f"no integration {integration_id!r}")
        session.expunge(integration)
        return integration


def _current_flow_run_id() -> str | None:
    return flow_run.get_id()


@task(name="find-due-integrations")
def find_due_integrations() -> list[str]:
    """Ids of the registry integrations whose sync interval has elapsed."""
    with session_scope() as session:
        due = integrations_due_for_sync(session, utcnow(), DEFAULT_SYNC_INTERVAL_SECONDS)
        return [integration.id for integration in due]


@task(name="integration-type")
def integration_type(integration_id: str) -> str:
    return _integration(integration_id).type


@task(
    name="register-on-platform",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_unless(RegistryRefused),
    timeout_seconds=REGISTER_ATTEMPT_TIMEOUT_SECONDS,
)
def register_on_platform(integration_id: str, request: dict[str, Any], registration_id: str) -> dict[str, Any]:
    """Register the model version on the platform; the same ``registration_id`` on every retry."""
    integration = _integration(integration_id)
    registry = open_registry(integration.id, integration.type, integration.config)
    return registry.register_model({**request, "registration_id": registration_id}).as_dict()


@task(name="record-registration", retries=2, retry_delay_seconds=2)
def record_registration(integration_id: str, version: dict[str, Any]) -> dict[str, Any]:
    """Record the registered version as monitored and emit ``model.registered`` (source ``api``)."""
    with session_scope() as session:
        integration = session.get(Integration, integration_id)
        recorded = record_model_version(
            session,
            integration,
            version["name"],
            version["version"],
            version["external_id"],
            source="api",
            flow_run_id=_current_flow_run_id(),
            aliases=version.get("aliases"),
            tags=version.get("tags"),
        ) or session.scalar(
            select(MonitoredModel).where(
                MonitoredModel.integration_id == integration_id,
                MonitoredModel.name == version["name"],
                MonitoredModel.version == version["version"],
            )
        )
        return {"monitored_model_id": recorded.id, **version}


@task(
    name="sync-versions",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_unless(RegistryRefused),
    timeout_seconds=SYNC_ATTEMPT_TIMEOUT_SECONDS,
)
def sync_versions(integration_id: str) -> int:
    """Record the versions of monitored models that appeared on the platform; return how many.

    The reconciliation behind push events: a version a push already recorded is not recorded (or
    emitted) again, one the push missed is recorded with ``"source": "sync"``, and the aliases and
    tags of recorded versions are brought in line with what the platform reports.
    """
    integration = _integration(integration_id)
    read_at = utcnow()
    with session_scope() as session:
        known = monitored_versions(session, integration_id)
    registry = open_registry(integration.id, integration.type, integration.config)
    found = {name: registry.list_versions(name) for name in known}
    recorded = 0
    with session_scope() as session:
        integration = session.get(Integration, integration_id)
        for name, versions in found.items():
            for version in versions:
                if version.version is None:
                    continue
                if version.version in known[name]:
                    reconcile_version_labels(
                        session, integration_id, name, version.version, version.aliases, version.tags, read_at
                    )
                    continue
                if record_model_version(
                    session,
                    integration,
                    name,
                    version.version,
                    version.external_id,
                    source="sync",
                    flow_run_id=_current_flow_run_id(),
                    aliases=version.aliases,
                    tags=version.tags,
                ):
                    recorded += 1
    return recorded


def receipts_forgotten_before(now: datetime) -> datetime:
    """Inbound receipts older than this are forgotten by the scheduled sync."""
    return now - timedelta(seconds=INBOUND_RECEIPT_RETENTION_SECONDS)


@task(name="prune-inbound-receipts")
def prune_inbound_receipts() -> int:
    """Forget inbound delivery ids older than any retry or replay can be (EventBridge retries for 24 h)."""
    with session_scope() as session:
        older_than = receipts_forgotten_before(utcnow())
        return registry_store.prune_inbound_receipts(session, older_than)


@task(name="record-sync-outcome")
def record_sync_outcome(integration_id: str, started_at: datetime, recorded: int, error: str | None) -> None:
    with session_scope() as session:
        state = registry_store.record_sync_outcome(session, integration_id, started_at, recorded, error)
        integration = session.get(Integration, integration_id)
        labels = (integration.type if integration is not None else "unknown", state.last_status)
    REGISTRY_SYNCS.labels(*labels).inc()  # once committed


@task(
    name="record-endpoint-statuses",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_unless(RegistryRefused),
    timeout_seconds=ENDPOINTS_ATTEMPT_TIMEOUT_SECONDS,
)
def record_endpoint_statuses(integration_id: str) -> list[dict[str, Any]]:
    """Read every endpoint's status and record those that changed; return the changes."""
    integration = _integration(integration_id)
    registry = open_registry(integration.id, integration.type, integration.config)
    endpoints = registry.list_endpoints()
    changes = []
    with session_scope() as session:
        for endpoint in endpoints:
            change = record_endpoint_status(
                session, integration_id, endpoint.external_id, endpoint.status, endpoint.deployments
            )
            if change is not None:
                changes.append({"endpoint": endpoint.name, "status": endpoint.status})
    return changes


def platform_message(error: BaseException) -> str:
    """What to store about a failed platform call: the platform's message, never a traceback."""
    if isinstance(error, RegistryError):
        return str(error)
    return f"{type(error).__name__}: {error}"


__all__ = [
    "ENDPOINT_TYPES",
    "find_due_integrations",
    "prune_inbound_receipts",
    "integration_type",
    "platform_message",
    "record_endpoint_statuses",
    "record_registration",
    "register_on_platform",
    "record_sync_outcome",
    "sync_versions",
]
