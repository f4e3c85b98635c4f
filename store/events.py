"""The outbox: every ModelPulse event is written here in its producer's transaction.

``record_event`` only adds a row to the caller's session; nothing is sent. The webhook dispatcher
(``flows/fan_out.py``) polls for committed rows whose ``dispatched_at`` is null, so an event is never
sent for a change that rolled back, and one written while no dispatcher runs waits for it (or for the
``retry-due-deliveries`` sweep).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event as orm_events
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.event_catalog import SUBSCRIBABLE_TYPES
from store.ids import new_id
from store.metrics import EVENTS_ACCEPTED
from store.models import Event, utcnow
from store.outbox_bell import ring_on_commit

# What a webhook may subscribe to; store/event_catalog.py describes each type's data.
EVENT_TYPES = SUBSCRIBABLE_TYPES


def record_event(
    session: Session,
    organization_id: str,
    type_: str,
    data: dict[str, Any],
    project_id: str | None = None,
    timestamp: datetime | None = None,
    event_id: str | None = None,
) -> Event:
    """Add an event to the outbox in ``session``'s transaction and return it (not yet committed).

    ``event_id`` (default: a new ``evt_...``) lets a producer name the event inside its own data, as
    the event that opens an episode does (``episode_event_id``).
    """
    event = Event(
        id=event_id or new_event_id(),
        organization_id=organization_id,
        project_id=project_id,
        type=type_,
        data=data,
        timestamp=timestamp or utcnow(),
    )
    session.add(event)
    session.info.setdefault(_ACCEPTED, []).append((organization_id, type_))
    ring_on_commit(session)  # dispatchers listening on PostgreSQL read the outbox once this commits
    return event


# ``modelpulse_events_accepted_total`` counts an event once its transaction commits: one that rolls back
# was never accepted.
_ACCEPTED = "modelpulse_accepted_events"


@orm_events.listens_for(Session, "after_commit")
def _count_accepted(session: Session) -> None:
    for organization_id, type_ in session.info.pop(_ACCEPTED, ()):
        EVENTS_ACCEPTED.labels(organization_id, type_).inc()


@orm_events.listens_for(Session, "after_rollback")
def _forget_accepted(session: Session) -> None:
    session.info.pop(_ACCEPTED, None)


def new_event_id() -> str:
    return new_id("evt")


def unpublished(session: Session, limit: int, written_before: datetime | None = None) -> list[Event]:
    """The oldest events not yet emitted to Prefect's event stream (optionally only those written before)."""
    query = select(Event).where(Event.published_at.is_(None))
    if written_before is not None:
        query = query.where(Event.timestamp <= written_before)
    return list(session.scalars(query.order_by(Event.id).limit(limit)))


def event_payload(event: Event) -> dict[str, Any]:
    """The wire form of an event (Standard Webhooks style), as webhooks and exports carry it."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "organization_id": event.organization_id,
        "project_id": event.project_id,
        "data": event.data,
    }
