"""Data access for registry monitoring: monitored versions, endpoint status history, sync state,
and the receipts of inbound push deliveries.

Every function takes the caller's session; the caller owns the transaction. Recording a new model
version writes its ``model.registered`` event into the outbox in that same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.events import record_event
from store.ids import new_id
from store.models import (
    EndpointStatusChange,
    InboundReceipt,
    Integration,
    MonitoredModel,
    RegistrySyncState,
    utcnow,
)


def record_model_version(
    session: Session,
    integration: Integration,
    name: str,
    version: str,
    external_id: str,
    source: str,
    flow_run_id: str | None = None,
    aliases: list[str] | None = None,
    tags: dict[str, str] | None = None,
) -> MonitoredModel | None:
    """Record a model version as monitored and emit ``model.registered``; ``None`` if already known.

    The unique (integration, name, version) constraint is the claim: of a push, a sync and a
    registration recording the same version at once, in any processes, one inserts the row and
    emits the event; the others' insert inserts nothing and they return ``None``.

    Args:
        session: The caller's session (the event joins its transaction).
        integration: The integration the version lives on.
        name: The model's name on the platform.
        version: The platform's version label.
        external_id: The platform's handle for that version (URI, ARN, resource name).
        source: ``"api"`` when registered through ModelPulse, ``"push"`` when the platform told us,
            ``"sync"`` when found by a sync.
        flow_run_id: The Prefect flow run recording it, if any.
        aliases: The version's aliases as the platform reports them.
        tags: The version's tags as the platform reports them.
    """
    if find_monitored_version(session, integration.id, name, version) is not None:
        return None
    monitored_id = new_id("mm")
    inserted = _insert_unless_taken(
        session,
        MonitoredModel,
        id=monitored_id,
        organization_id=integration.organization_id,
        integration_id=integration.id,
        project_id=integration.project_id,
        name=name,
        version=version,
        external_id=external_id,
        source=source,
        flow_run_id=flow_run_id,
        aliases=sorted(aliases or []),
        tags=dict(tags or {}),
        registered_at=utcnow(),
        labels_updated_at=utcnow(),
    )
    if not inserted:
        return None  # recorded meanwhile by another process: its event is the one
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
    return session.get(MonitoredModel, monitored_id)


def _insert_unless_taken(session: Session, model: type[Any], **values: Any) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING``: whether this row went in (a unique key taken means not).

    A concurrent writer of the same key waits for the first one's commit and then inserts nothing
    (PostgreSQL), or waits for the database's write lock (SQLite). No savepoint: pysqlite would let
    one started outside a transaction commit on release.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.flush()  # pending ORM changes first, as a query would
    table = model.__table__
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return session.execute(statement).first() is not None  # rowcount is -1 here on psycopg


def find_monitored_version(session: Session, integration_id: str, name: str, version: str) -> MonitoredModel | None:
    return session.scalar(
        select(MonitoredModel).where(
            MonitoredModel.integration_id == integration_id,
            MonitoredModel.name == name,
            MonitoredModel.version == version,
        )
    )


def is_monitored(session: Session, integration_id: str, name: str) -> bool:
    """Whether any version of the model is recorded for this integration (what makes it monitored)."""
    return (
        session.scalar(
            select(MonitoredModel.id)
            .where(MonitoredModel.integration_id == integration_id, MonitoredModel.name == name)
            .limit(1)
        )
        is not None
    )


def set_version_alias(session: Session, integration_id: str, name: str, alias: str, version: str) -> bool:
    """Point ``alias`` at one version (an alias names one version of a model at a time).

    The alias leaves every other recorded version, and joins this one if it is recorded. Returns
    whether any recorded version changed.
    """
    changed = False
    for row in _model_versions(session, integration_id, name):
        if row.version == version and alias not in row.aliases:
            _set_labels(row, sorted([*row.aliases, alias]), row.tags)
            changed = True
        elif row.version != version and alias in row.aliases:
            _set_labels(row, [a for a in row.aliases if a != alias], row.tags)
            changed = True
    return changed


def delete_version_alias(session: Session, integration_id: str, name: str, alias: str) -> bool:
    """Remove ``alias`` from whichever recorded version of the model carries it; whether one did."""
    removed = False
    for row in _model_versions(session, integration_id, name):
        if alias in row.aliases:
            _set_labels(row, [a for a in row.aliases if a != alias], row.tags)
            removed = True
    return removed


def set_version_tag(
    session: Session, integration_id: str, name: str, version: str, key: str, value: str | None
) -> bool:
    """Set (or, with ``value`` None, delete) a tag of a recorded version; whether the version is recorded."""
    row = next(iter(_model_versions(session, integration_id, name, version)), None)
    if row is None:
        return False
    tags = {k: v for k, v in row.tags.items() if k != key}
    if value is not None:
        tags[key] = value
    _set_labels(row, row.aliases, tags)
    return True


def reconcile_version_labels(
    session: Session,
    integration_id: str,
    name: str,
    version: str,
    aliases: list[str],
    tags: dict[str, str],
    read_at: datetime,
) -> bool:
    """Store what a sync read of a recorded version's aliases and tags; whether anything changed.

    Left alone when a push wrote them after the sync's read began (``read_at``): that is newer.
    """
    def unchanged(row: MonitoredModel | None) -> bool:
        newer = row is not None and row.labels_updated_at is not None and row.labels_updated_at > read_at
        return row is None or newer or (sorted(aliases) == sorted(row.aliases) and dict(tags) == dict(row.tags))

    if unchanged(find_monitored_version(session, integration_id, name, version)):
        return False  # the usual case, decided without taking a lock
    row = next(iter(_model_versions(session, integration_id, name, version)), None)
    if unchanged(row):
        return False
    _set_labels(row, sorted(aliases), dict(tags), at=read_at)
    return True


def _model_versions(
    session: Session, integration_id: str, name: str, version: str | None = None
) -> list[MonitoredModel]:
    """The model's recorded versions (or one of them), locked for this transaction, as last committed.

    Aliases and tags are read, changed and written back whole, so two deliveries about one model
    must not interleave: a no-op write takes the rows' locks first (row locks on PostgreSQL, the
    write lock on SQLite, where a plain read would not hold anything) and the read after it sees
    what the other writer committed.
    """
    table = MonitoredModel.__table__
    condition = (table.c.integration_id == integration_id) & (table.c.name == name)
    if version is not None:
        condition &= table.c.version == version
    session.execute(update(table).where(condition).values(name=table.c.name))
    statement = select(MonitoredModel).where(
        MonitoredModel.integration_id == integration_id, MonitoredModel.name == name
    )
    if version is not None:
        statement = statement.where(MonitoredModel.version == version)
    statement = statement.order_by(MonitoredModel.id).execution_options(populate_existing=True)
    return list(session.scalars(statement))


def _set_labels(row: MonitoredModel, aliases: list[str], tags: dict[str, Any], at: datetime | None = None) -> None:
    # New objects, not in-place edits: the JSON columns only notice assignment.
    row.aliases = list(aliases)
    row.tags = dict(tags)
    row.labels_updated_at = at or utcnow()


def claim_inbound_receipt(session: Session, integration_id: str, receipt_id: str) -> bool:
    """Take an inbound delivery id for this integration; ``False`` if it was taken before (a replay).

    The primary key decides across processes: a concurrent taker's insert inserts nothing.
    """
    return _insert_unless_taken(
        session, InboundReceipt, integration_id=integration_id, receipt_id=receipt_id, received_at=utcnow()
    )


def prune_inbound_receipts(session: Session, received_before: datetime) -> int:
    """Forget receipts older than ``received_before`` (no retry or replay can arrive that late)."""
    result = session.execute(delete(InboundReceipt).where(InboundReceipt.received_at < received_before))
    return result.rowcount or 0


def any_inbound_receipt_before(session: Session, received_before: datetime) -> bool:
    """Whether ``prune_inbound_receipts`` would forget anything."""
    query = select(InboundReceipt.receipt_id).where(InboundReceipt.received_at < received_before)
    return session.execute(query.limit(1)).first() is not None


def last_endpoint_status(session: Session, integration_id: str, endpoint_id: str) -> EndpointStatusChange | None:
    return session.scalar(
        select(EndpointStatusChange)
        .where(
            EndpointStatusChange.integration_id == integration_id,
            EndpointStatusChange.endpoint_id == endpoint_id,
        )
        .order_by(EndpointStatusChange.id.desc())
        .limit(1)
    )


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
    An observation older than the last one recorded (a push event delivered late) is not a change.
    """
    last = last_endpoint_status(session, integration_id, endpoint_id)
    if last is not None and last.status == status and last.deployments == deployments:
        return None
    if last is not None and observed_at is not None and observed_at < last.observed_at:
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
