"""Threshold rules and their per-model breach episodes."""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import Threshold, ThresholdState

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
    """Full replace; a changed rule starts over, so its breach episodes are forgotten."""
    for name, value in fields.items():
        setattr(threshold, name, value)
    for state in session.scalars(select(ThresholdState).where(ThresholdState.threshold_id == threshold.id)):
        session.delete(state)


def delete_threshold(session: Session, threshold: Threshold) -> None:
    for state in session.scalars(select(ThresholdState).where(ThresholdState.threshold_id == threshold.id)):
        session.delete(state)
    session.delete(threshold)


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


def record_evaluation(
    session: Session, threshold: Threshold, model: str, value: float, now: datetime
) -> tuple[ThresholdState, bool]:
    """Store one evaluation of ``threshold`` for ``model``; return the state and whether an episode began.

    Only the first breach after a value within bounds begins an episode; a breach that continues, or
    a recovery, changes the state only. So the caller emits ``threshold.breached`` once per episode.
    """
    state = session.scalar(
        select(ThresholdState).where(ThresholdState.threshold_id == threshold.id, ThresholdState.model == model)
    )
    if state is None:
        state = ThresholdState(threshold_id=threshold.id, model=model, breached=False, consecutive_breaches=0)
        session.add(state)
    breached = OPERATORS[threshold.operator](value, threshold.value)
    episode_begins = breached and not state.breached
    state.breached = breached
    state.consecutive_breaches = state.consecutive_breaches + 1 if breached else 0
    if episode_begins:
        state.episode_started_at = now
    elif not breached:
        state.episode_started_at = None
    state.last_value = value
    state.last_evaluated_at = now
    return state, episode_begins


def get_threshold_state(session: Session, threshold_id: str, model: str) -> ThresholdState | None:
    return session.scalar(
        select(ThresholdState).where(ThresholdState.threshold_id == threshold_id, ThresholdState.model == model)
    )
