"""Threshold rules and their per-model breach episodes.

An episode begins with the first breach after a value within bounds (``threshold.breached``) and
ends with the first value back within bounds, or when its rule is changed or deleted
(``threshold.resolved``, naming the event that began it). Both are written in the caller's transaction.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from store.events import record_event
from store.ids import new_id
from store.models import Threshold, ThresholdState, utcnow

OPERATORS: dict[str, Callable[[float, float], bool]] = {">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le}


def create_threshold(session: Session, organization_id: str, fields: dict) -> Threshold:
    threshold = Threshold(id=new_id("thr"), organization_id=organization_id, **fields)
    session.add(threshold)
    return threshold


def get_threshold(session: Session, organization_id: str, threshold_id: str) -> Threshold | None:
    """The organization's threshold with this id, or None (also for another organization's)."""
    threshold = session.get(Threshold, threshold_id)
    return threshold if threshold is not None and threshold.organization_id == organization_id else None


def replace_threshold(session: Session, threshold: Threshold, fields: dict) -> None:
    """Full replace; a changed rule starts over, so its breach episodes end (``threshold_changed``)."""
    _end_episodes(session, threshold, "threshold_changed")
    for name, value in fields.items():
        setattr(threshold, name, value)


def delete_threshold(session: Session, threshold: Threshold) -> None:
    """Delete the rule; its open breach episodes end (``threshold_deleted``)."""
    _end_episodes(session, threshold, "threshold_deleted")
    session.delete(threshold)


def _end_episodes(session: Session, threshold: Threshold, reason: str) -> None:
    now = utcnow()
    for state in session.scalars(select(ThresholdState).where(ThresholdState.threshold_id == threshold.id)):
        if state.breached:
            data = resolved_data(threshold, state.model, None, state.episode_event_id, state.episode_started_at, reason)
            record_event(session, threshold.organization_id, "threshold.resolved", data, threshold.project_id, now)
        session.delete(state)
    session.flush()  # the states go before their threshold may (no ORM relationship orders the two)


def resolved_data(
    threshold: Threshold,
    model: str,
    value: float | None,
    episode_event_id: str | None,
    breached_at: datetime | None,
    reason: str = "recovered",
    **extra: Any,
) -> dict[str, Any]:
    """The ``data`` of a ``threshold.resolved`` event (see ``store.event_catalog.ThresholdResolvedData``)."""
    return {
        "threshold_id": threshold.id,
        "model": model,
        "metric": threshold.metric,
        "operator": threshold.operator,
        "threshold": threshold.value,
        "value": value,
        "severity": threshold.severity,
        "reason": reason,
        "breached_at": breached_at.isoformat() if breached_at else None,
        "episode_event_id": episode_event_id,
        **extra,
    }


def list_thresholds_query(organization_id: str) -> Select[tuple[Threshold]]:
    return select(Threshold).where(Threshold.organization_id == organization_id)


def thresholds_for(session: Session, organization_id: str, model: str, metric_prefix: str) -> list[Threshold]:
    """Enabled thresholds of the organization whose metric starts with ``metric_prefix`` and that
    apply to ``model`` (their model is ``model`` or null)."""
    query = select(Threshold).where(
        Threshold.organization_id == organization_id,
        Threshold.enabled.is_(True),
        Threshold.metric.startswith(metric_prefix, autoescape=True),
        or_(Threshold.model == model, Threshold.model.is_(None)),
    )
    return list(session.scalars(query.order_by(Threshold.id)))


def enabled_thresholds(session: Session, metric_prefixes: tuple[str, ...]) -> list[Threshold]:
    """Every organization's enabled thresholds over the given metric families."""
    query = select(Threshold).where(
        Threshold.enabled.is_(True), or_(*(Threshold.metric.startswith(p, autoescape=True) for p in metric_prefixes))
    )
    return list(session.scalars(query.order_by(Threshold.id)))


@dataclass(frozen=True)
class EpisodeChange:
    """What one evaluation did to the breach episode: began one, ended one (which), or neither."""

    began: bool = False
    ended: bool = False
    ended_event_id: str | None = None  # the threshold.breached event that began the episode that ended
    ended_started_at: datetime | None = None


def record_evaluation(
    session: Session, threshold: Threshold, model: str, value: float, now: datetime
) -> tuple[ThresholdState, EpisodeChange]:
    """Store one evaluation of ``threshold`` for ``model``; return the state and what it did to the episode.

    Only the first breach after a value within bounds begins an episode, and only the first value
    within bounds after a breach ends it; a breach that continues changes the state only. So the
    caller emits ``threshold.breached`` and ``threshold.resolved`` once per episode (and records the
    id of the first in ``state.episode_event_id``).
    """
    state = session.scalar(
        select(ThresholdState).where(ThresholdState.threshold_id == threshold.id, ThresholdState.model == model)
    )
    if state is None:
        state = ThresholdState(threshold_id=threshold.id, model=model, breached=False, consecutive_breaches=0)
        session.add(state)
    breached = OPERATORS[threshold.operator](value, threshold.value)
    change = EpisodeChange(
        began=breached and not state.breached,
        ended=state.breached and not breached,
        ended_event_id=state.episode_event_id,
        ended_started_at=state.episode_started_at,
    )
    state.breached = breached
    state.consecutive_breaches = state.consecutive_breaches + 1 if breached else 0
    if change.began:
        state.episode_started_at = now
    elif not breached:
        state.episode_started_at = None
        state.episode_event_id = None
    state.last_value = value
    state.last_evaluated_at = now
    return state, change


def get_threshold_state(session: Session, threshold_id: str, model: str) -> ThresholdState | None:
    return session.scalar(
        select(ThresholdState).where(ThresholdState.threshold_id == threshold_id, ThresholdState.model == model)
    )
