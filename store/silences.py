"""Silences: for a while, an organization's events that match are sent to no webhook (Alertmanager's model).

A silence's ``matchers`` are a webhook filter (``store.event_filters``): dotted paths of the event as
webhooks receive it (``type``, ``project_id``, ``data.<field>``) to values or operator objects. It covers
every publishable event type, unless its matchers pin ``type`` (``"type": "drift.detected"``, ``{"$in":
[...]}``): then only those. An event is silenced when its time falls in ``[starts_at, ends_at)`` and the
matchers match it; each of its subscribed webhooks (whose filter lets it through) then records a
``silenced`` delivery naming the silence, and none is sent.

Expiring a silence (the API's ``DELETE``) moves its ``ends_at`` to now; its record stays, so a delivery's
``silence_id`` can always be looked up. Every silence created or expired gives its organization a new
``silence_set_version`` (one ``UPDATE`` in the same transaction), which the webhook dispatcher reads with the
webhook rows it loads anyway, so it reloads an organization's silences only when they changed.

The checks (``matchers_problems``) are pure; the rest takes the session, like the rest of ``store``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from store.event_catalog import PUBLISHABLE_TYPES
from store.event_filters import FilterInvalid, Location, compile_filter
from store.ids import new_id
from store.models import Organization, Silence

SilenceState = Literal["pending", "active", "expired"]
SILENCE_STATES: tuple[SilenceState, ...] = ("pending", "active", "expired")


def silenced_types(matchers: dict[str, Any]) -> list[str]:
    """The publishable types a silence can match: those its top-level ``type`` condition names, else all.

    Example:
        ``silenced_types({"type": {"$in": ["drift.detected"]}, "data.model": "churn"})  # ["drift.detected"]``
    """
    condition = matchers.get("type")
    named: Iterable[Any] = ()
    if isinstance(condition, str):
        named = [condition]
    elif isinstance(condition, dict) and len(condition) == 1:
        operator, operand = next(iter(condition.items()))
        if operator == "$eq":
            named = [operand]
        elif operator == "$in" and isinstance(operand, list):
            named = operand
    types = [t for t in PUBLISHABLE_TYPES if t in set(x for x in named if isinstance(x, str))]
    return types or list(PUBLISHABLE_TYPES)


def matchers_problems(matchers: Any) -> list[tuple[Location, str]]:
    """What is wrong with a silence's ``matchers``: (location within them, message) pairs; none: usable.

    They are a filter checked against the catalog of the types they can match (``silenced_types``); at
    least one condition is needed (a silence of everything would hide every event of the organization).
    """
    if isinstance(matchers, dict) and not matchers:
        return [((), "a silence needs at least one matcher (data.model, type, project_id...)")]
    try:
        compile_filter(matchers, silenced_types(matchers) if isinstance(matchers, dict) else None)
    except FilterInvalid as invalid:
        # The catalog check speaks of a webhook's subscribed types; a silence's are the types it covers.
        return [
            (location, message.replace("subscribed event type", "event type it covers"))
            for location, message in invalid.errors
        ]
    return []


def silence_state(silence: Silence, now: datetime) -> SilenceState:
    """``pending`` before ``starts_at``, ``active`` until ``ends_at``, then ``expired``."""
    if now >= silence.ends_at:
        return "expired"
    return "pending" if now < silence.starts_at else "active"


def create_silence(
    session: Session,
    organization_id: str,
    matchers: dict[str, Any],
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
    created_by: str,
) -> Silence:
    """Store a silence (already checked) and move the organization's silence set version."""
    silence = Silence(
        id=new_id("sil"),
        organization_id=organization_id,
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=created_by,
    )
    session.add(silence)
    _silences_changed(session, organization_id)
    return silence


def expire_silence(session: Session, silence: Silence, now: datetime) -> bool:
    """End the silence now (a pending one never starts); whether it changed (an expired one stays as it was)."""
    if silence_state(silence, now) == "expired":
        return False
    silence.starts_at = min(silence.starts_at, now)
    silence.ends_at = now
    _silences_changed(session, silence.organization_id)
    return True


def _silences_changed(session: Session, organization_id: str) -> None:
    # A fresh token, so no dispatcher can mistake the new set for one it has cached.
    session.execute(
        update(Organization)
        .where(Organization.id == organization_id)
        .values(silence_set_version=new_id("ssv"))
        .execution_options(synchronize_session=False)
    )


def get_silence(session: Session, organization_id: str, silence_id: str) -> Silence | None:
    """The organization's silence with this id, or ``None`` (also for another organization's)."""
    silence = session.get(Silence, silence_id)
    return silence if silence is not None and silence.organization_id == organization_id else None


def silences_query(organization_id: str, state: SilenceState | None, now: datetime) -> Select[tuple[Silence]]:
    """The organization's silences, optionally only those in ``state`` at ``now`` (unordered)."""
    query = select(Silence).where(Silence.organization_id == organization_id)
    if state == "expired":
        query = query.where(Silence.ends_at <= now)
    elif state == "active":
        query = query.where(Silence.starts_at <= now, Silence.ends_at > now)
    elif state == "pending":
        query = query.where(Silence.starts_at > now, Silence.ends_at > now)
    return query


def silences_ending_after(session: Session, organization_id: str, moment: datetime) -> list[Silence]:
    """The organization's silences that end after ``moment`` (those that can still silence an event of
    that time or later), oldest first."""
    return list(
        session.scalars(
            select(Silence)
            .where(Silence.organization_id == organization_id, Silence.ends_at > moment)
            .order_by(Silence.id)
        )
    )
