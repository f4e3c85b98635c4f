"""Every accepted ModelPulse event, emitted into Prefect's event stream (and so its UI's event feed).

Each outbox event becomes one Prefect event::

    event     modelpulse.<type>                          (modelpulse.drift.detected)
    resource  modelpulse.model.<organization>.<model>    (events without a model, the operational ones:
                                                          modelpulse.organization.<organization>)
              labels modelpulse.organization, modelpulse.project, modelpulse.model, modelpulse.version
              (those the event has)
    related   modelpulse.remediation.<id>, role "remediation", for each remediation of the organization
              whose ``on`` (type and filter) the event matches
    payload   the event as webhooks receive it (id, type, timestamp, organization_id, project_id, data)
    id        a UUID derived from the event's id, so the same event emitted twice is one event to Prefect

Remediations (``api/services/remediations.py``) are Prefect automations whose trigger expects the
``modelpulse.<type>`` event of their organization's resource **and** their own related resource: the
filter is evaluated here, with the same code the webhook dispatcher uses (``store.event_filters``), so every
operator of ModelPulse's filter language works, which Prefect's trigger ``match`` (equality and ``*``
prefixes on labels) could not express. An organization's events only ever name its own remediations.

Who emits: the webhook dispatcher (``flows/fan_out.py``), in a loop of its own beside the fan-out (no
Prefect round trip on the way to a webhook's first attempt), in batches of the oldest events whose
``published_at`` is null; each is sent on Prefect's events websocket with a checkpoint (a ping answered
after it, Prefect's own confirmation), then the batch is marked published. A dispatcher that dies
between the two leaves the batch unpublished, and the next emits it again under the same Prefect event
ids: Prefect's event store and its automations (``event_has_been_seen``) drop the repeats. Events no
dispatcher published (none was running) are emitted by the ``retry-due-deliveries`` sweep.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect.events import Event as PrefectEvent
from prefect.events.clients import EventsClient
from sqlalchemy import update

from store.db import read_scope, session_scope
from store.event_filters import Filter, compile_filter
from store.events import event_payload, unpublished
from store.models import Event, Remediation, utcnow
from store.remediations import remediations_of

EVENT_PREFIX = "modelpulse."
ORGANIZATION_LABEL = "modelpulse.organization"
REMEDIATION_ROLE = "remediation"
# Prefect event ids are UUIDs; ModelPulse's are ``evt_<ulid>``: one is derived from the other.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c6f0e-3f7e-4d55-9d0e-6d6f64656c70")

# How many events one pass reads and emits at most.
BATCH_SIZE = 200


def prefect_event_name(event_type: str) -> str:
    return f"{EVENT_PREFIX}{event_type}"


def model_resource_id(organization_id: str, model: str) -> str:
    return f"modelpulse.model.{organization_id}.{model}"


def organization_resource_id(organization_id: str) -> str:
    return f"modelpulse.organization.{organization_id}"


def remediation_resource_id(remediation_id: str) -> str:
    return f"modelpulse.remediation.{remediation_id}"


def prefect_event_id(event_id: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, event_id)


def _model_and_version(data: dict[str, Any]) -> tuple[str | None, str | None]:
    # model.registered names the model `name` and its version `version`; the other types `model`, `model_version`.
    model = data.get("model", data.get("name"))
    version = data.get("model_version", data.get("version"))
    return (
        model if isinstance(model, str) and model else None,
        str(version) if isinstance(version, str | int) and not isinstance(version, bool) else None,
    )


def prefect_event(envelope: dict[str, Any], occurred: datetime, remediation_ids: Sequence[str] = ()) -> PrefectEvent:
    """The Prefect event of a ModelPulse event (its wire form, ``store.events.event_payload``)."""
    organization_id = envelope["organization_id"]
    model, version = _model_and_version(envelope.get("data") or {})
    resource = {
        "prefect.resource.id": (
            model_resource_id(organization_id, model) if model else organization_resource_id(organization_id)
        ),
        "prefect.resource.name": model or organization_id,
        ORGANIZATION_LABEL: organization_id,
    }
    if envelope.get("project_id"):
        resource["modelpulse.project"] = envelope["project_id"]
    if model:
        resource["modelpulse.model"] = model
    if version:
        resource["modelpulse.version"] = version
    related = [
        {
            "prefect.resource.id": remediation_resource_id(remediation_id),
            "prefect.resource.role": REMEDIATION_ROLE,
            ORGANIZATION_LABEL: organization_id,
        }
        for remediation_id in remediation_ids
    ]
    return PrefectEvent(
        id=prefect_event_id(envelope["id"]),
        occurred=occurred,
        event=prefect_event_name(envelope["type"]),
        resource=resource,
        related=related,
        payload=envelope,
    )


@dataclass(frozen=True)
class _CompiledRemediation:
    id: str
    event_type: str
    filter: Filter | None


# Filters compiled once per remediation version (id, updated_at), as the dispatcher does for webhooks.
_compiled: dict[tuple[str, datetime], _CompiledRemediation] = {}


def _compile(remediation: Remediation) -> _CompiledRemediation:
    key = (remediation.id, remediation.updated_at)
    compiled = _compiled.get(key)
    if compiled is None:
        if len(_compiled) > 10_000:
            _compiled.clear()
        source = remediation.on.get("filter")
        compiled = _CompiledRemediation(
            remediation.id, remediation.on["type"], compile_filter(source) if source is not None else None
        )
        _compiled[key] = compiled
    return compiled


def matching_remediations(remediations: Sequence[Remediation], envelope: dict[str, Any]) -> list[str]:
    """The ids of those ``remediations`` (of the event's organization) whose ``on`` the event matches."""
    matched = []
    for remediation in remediations:
        if remediation.organization_id != envelope["organization_id"]:
            continue
        compiled = _compile(remediation)
        if compiled.event_type == envelope["type"] and (compiled.filter is None or compiled.filter.matches(envelope)):
            matched.append(compiled.id)
    return matched


def unpublished_events(
    limit: int = BATCH_SIZE, written_before: datetime | None = None, database_url: str | None = None
) -> list[tuple[str, PrefectEvent]]:
    """The oldest events not yet emitted to Prefect, each with its Prefect event (remediations matched)."""
    with read_scope(database_url) as session:
        events = unpublished(session, limit, written_before)
        if not events:
            return []
        by_organization: dict[str, list[Remediation]] = {}
        for remediation in remediations_of(session, {event.organization_id for event in events}):
            by_organization.setdefault(remediation.organization_id, []).append(remediation)
        found = []
        for event in events:
            envelope = event_payload(event)
            remediations = matching_remediations(by_organization.get(event.organization_id, []), envelope)
            found.append((event.id, prefect_event(envelope, event.timestamp, remediations)))
        return found


def mark_published(event_ids: Sequence[str], database_url: str | None = None) -> None:
    with session_scope(database_url) as session:
        session.execute(
            update(Event).where(Event.id.in_(event_ids), Event.published_at.is_(None)).values(published_at=utcnow())
        )


async def publish_events(
    client: EventsClient,
    written_before: datetime | None = None,
    limit: int = BATCH_SIZE,
    database_url: str | None = None,
) -> int:
    """Emit every unpublished event (optionally only those written before a time) through ``client``,
    ``limit`` at a time, marking each batch published once sent; returns how many were emitted.

    ``client`` should checkpoint every event (``get_events_client(checkpoint_every=1)``): its ``emit``
    then returns once Prefect's server has answered a ping sent after the event.

    Example:
        ```python
        async with get_events_client(checkpoint_every=1) as client:
            await publish_events(client)
        ```
    """
    emitted = 0
    while True:
        batch = await asyncio.to_thread(unpublished_events, limit, written_before, database_url)
        for _, event in batch:
            await client.emit(event)
        if batch:
            await asyncio.to_thread(mark_published, [event_id for event_id, _ in batch], database_url)
        emitted += len(batch)
        if len(batch) < limit:
            return emitted
