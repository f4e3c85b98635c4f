"""Data access for registry monitoring: monitored versions, endpoint status history, sync state.

Every function takes the caller's session; the caller owns the transaction. Recording a new model
version writes its ``model.registered`` event into the outbox in that same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.events import record_event
from store.ids import new_id
from store.models import EndpointStatusChange, Integration, MonitoredModel, RegistrySyncState, utcnow


def record_model_version(
    session: Session,
    integration: Integration,
    name: str,
    version: str,
    external_id: str,
    source: str,
    flow_run_id: str | None = None,
) -> MonitoredModel | None:
    """Record a model version as monitored and emit ``model.registered``; ``None`` if already known.

    Args:
        session: The caller's session (the event joins its transaction).
        integration: The integration the version lives on.
        name: The model's name on the platform.
        version: The platform's version label.
        external_id: The platform's handle for that version (URI, ARN, resource name).
        source: ``"api"`` when registered through ModelPulse, ``"sync"`` when found by a sync.
        flow_run_id: The Prefect flow run recording it, if any.
    """
    existing = session.scalar(
        select(MonitoredModel).where(
            MonitoredModel.integration_id == integration.id,
            MonitoredModel.name == name,
            MonitoredModel.version == version,
        )
    )
    if existing is not None:
        return None
    monitored = MonitoredModel(
        id=new_id("mm"),
        organization_id=integration.organization_id,
        integration_id=integration.id,
        project_id=integration.project_id,
        name=name,
        version=version,
        external_id=external_id,
        source=source,
        flow_run_id=flow_run_id,
    )
    session.add(monitored)
    record_event(
        session,
        integration.organization_id,
        "model.registered",
        {
            "integration_id": integration.id,
            "integration_type": integration.type,
            "name": name,
            "version": version,
            "external_id": external_id,
            "source": source,
        },
        project_id=integration.project_id,
    )
    return monitored


def model_recorded_by(session: Session, integration_id: str, flow_run_id: str) -> MonitoredModel | None:
    """The monitored version a flow run recorded for this integration, if any."""
    return session.scalar(
        select(MonitoredModel).where(
            MonitoredModel.integration_id == integration_id, MonitoredModel.flow_run_id == flow_run_id
        )
    )


def monitored_versions(session: Session, integration_id: str) -> dict[str, set[str]]:
    """Model name to the set of its versions already recorded for this integration."""
    rows = session.execute(
        select(MonitoredModel.name, MonitoredModel.version).where(MonitoredModel.integration_id == integration_id)
    )
    versions: dict[str, set[str]] = {}
    for name, version in rows:
        versions.setdefault(name, set()).add(version)
    return versions


def record_endpoint_status(
    session: Session,
    integration_id: str,
    endpoint_id: str,
    status: str,
    deployments: list[dict[str, Any]],
    observed_at: datetime | None = None,
) -> EndpointStatusChange | None:
    """Record the endpoint's status if it differs from the last one recorded; ``None`` if unchanged.

    A change is a new status or a change in what the endpoint serves (models, versions, traffic).
    """
    last = session.scalar(
        select(EndpointStatusChange)
        .where(
            EndpointStatusChange.integration_id == integration_id,
            EndpointStatusChange.endpoint_id == endpoint_id,
        )
        .order_by(EndpointStatusChange.id.desc())
        .limit(1)
    )
    if last is not None and last.status == status and last.deployments == deployments:
        return None
    change = EndpointStatusChange(
        integration_id=integration_id,
        endpoint_id=endpoint_id,
        status=status,
        deployments=deployments,
        observed_at=observed_at or utcnow(),
    )
    session.add(change)
    return change


def endpoint_status_history(
    session: Session, integration_id: str, endpoint_id: str, limit: int = 10
) -> list[EndpointStatusChange]:
    """The endpoint's last recorded status changes, newest first."""
    return list(
        session.scalars(
            select(EndpointStatusChange)
            .where(
                EndpointStatusChange.integration_id == integration_id,
                EndpointStatusChange.endpoint_id == endpoint_id,
            )
            .order_by(EndpointStatusChange.id.desc())
            .limit(limit)
        )
    )


def sync_state(session: Session, integration_id: str) -> RegistrySyncState | None:
    return session.get(RegistrySyncState, integration_id)


def record_sync_outcome(
    session: Session,
    integration_id: str,
    started_at: datetime,
    versions_recorded: int,
    error: str | None = None,
) -> RegistrySyncState:
    """Store how the integration's latest sync ended (``error`` set means it failed)."""
    state = session.get(RegistrySyncState, integration_id)
    if state is None:
        state = RegistrySyncState(integration_id=integration_id)
        session.add(state)
    state.last_started_at = started_at
    state.last_finished_at = utcnow()
    state.last_status = "failed" if error else "succeeded"
    state.last_error = error[:2000] if error else None
    state.versions_recorded = versions_recorded
    return state


def integrations_due_for_sync(session: Session, now: datetime, default_interval_seconds: int) -> list[Integration]:
    """Integrations whose last sync started ``config.sync_interval_seconds`` or more ago (or never)."""
    rows = session.execute(
        select(Integration, RegistrySyncState.last_started_at)
        .outerjoin(RegistrySyncState, RegistrySyncState.integration_id == Integration.id)
        .where(Integration.type.in_(("mlflow", "sagemaker", "vertex_ai")))
        .order_by(Integration.id)
    )
    due = []
    for integration, last_started_at in rows:
        interval = int(integration.config.get("sync_interval_seconds") or default_interval_seconds)
        if last_started_at is None or (now - last_started_at).total_seconds() >= interval:
            due.append(integration)
    return due
