"""Monitors: a model's scheduled drift check, when it is next due, and its drift episode.

A monitor's drift episode begins with the first check that finds drift (its ``drift.detected`` event
opens it) and ends with the first clean check after it, or when the monitor is deleted or disabled:
``drift.resolved``, once, naming the opening event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.events import record_event
from store.ids import new_id
from store.models import Event, InferenceLog, Monitor, MonitoredModel, utcnow


def next_run_after(schedule: dict[str, Any], after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``schedule`` fires.

    Args:
        schedule: ``{"interval_seconds": n}`` or ``{"cron": "*/5 * * * *", "timezone": "UTC"}``, the
            shapes export schedules use.
    """
    if "interval_seconds" in schedule:
        return after + timedelta(seconds=int(schedule["interval_seconds"]))
    local = after.astimezone(ZoneInfo(schedule.get("timezone") or "UTC")).replace(microsecond=0)
    return next(CronSim(schedule["cron"], local)).astimezone(UTC)


def get_monitor(session: Session, organization_id: str, model: str) -> Monitor | None:
    """The organization's monitor of ``model``, or None."""
    return session.scalar(select(Monitor).where(Monitor.organization_id == organization_id, Monitor.model == model))


def put_monitor(session: Session, organization_id: str, model: str, fields: dict[str, Any]) -> tuple[Monitor, bool]:
    """Create or fully replace the monitor of ``model``; return it and whether it was created.

    The next run is scheduled from now, so a changed schedule takes effect at once. Disabling a
    monitor ends its drift episode (``drift.resolved`` with reason ``monitor_disabled``).
    """
    monitor = get_monitor(session, organization_id, model)
    created = monitor is None
    if monitor is not None and monitor.enabled and fields.get("enabled") is False:
        end_drift_episode(session, monitor, "monitor_disabled")
    if monitor is None:
        monitor = Monitor(id=new_id("mon"), organization_id=organization_id, model=model)
        session.add(monitor)
    for name, value in fields.items():
        setattr(monitor, name, value)
    monitor.next_run_at = next_run_after(monitor.schedule, utcnow())
    return monitor, created


def delete_monitor(session: Session, monitor: Monitor) -> None:
    """Delete the monitor; a drift episode in progress ends (``monitor_deleted``)."""
    end_drift_episode(session, monitor, "monitor_deleted")
    session.delete(monitor)


def begin_drift_episode(session: Session, monitor_id: str, event_id: str) -> str | None:
    """The opening event id of the monitor's drift episode: ``event_id`` if this call began it, the
    existing one if an episode is in progress; ``None`` if the monitor is gone."""
    began = session.execute(
        update(Monitor)
        .where(Monitor.id == monitor_id, Monitor.drift_episode_event_id.is_(None))
        .values(drift_episode_event_id=event_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if began:
        return event_id
    return session.scalar(select(Monitor.drift_episode_event_id).where(Monitor.id == monitor_id))


def end_drift_episode(
    session: Session, monitor: Monitor, reason: str, check_id: str | None = None, **extra: Any
) -> str | None:
    """End the monitor's drift episode, if one is in progress, and emit ``drift.resolved`` for it.

    Guarded by the opening event id, so two clean checks finishing together resolve it once. Returns
    the id of the event that had opened it.
    """
    opened_by = session.scalar(select(Monitor.drift_episode_event_id).where(Monitor.id == monitor.id))
    if opened_by is None:
        return None
    ended = session.execute(
        update(Monitor)
        .where(Monitor.id == monitor.id, Monitor.drift_episode_event_id == opened_by)
        .values(drift_episode_event_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not ended:
        return None
    monitor.drift_episode_event_id = None
    opening = session.get(Event, opened_by)
    data = {
        "model": monitor.model,
        "model_version": monitor.model_version,
        "monitor_id": monitor.id,
        "check_id": check_id,
        "reason": reason,
        "drifting_since": opening.timestamp.isoformat() if opening is not None else None,
        "episode_event_id": opened_by,
        **extra,
    }
    record_event(session, monitor.organization_id, "drift.resolved", data, monitor.project_id)
    return opened_by


def due_monitors(session: Session, now: datetime) -> list[Monitor]:
    """Enabled monitors whose next run is at or before ``now``."""
    query = select(Monitor).where(Monitor.enabled.is_(True), Monitor.next_run_at <= now).order_by(Monitor.next_run_at)
    return list(session.scalars(query))


def claim_monitor_run(session: Session, monitor: Monitor, now: datetime) -> bool:
    """Move the monitor's next run past ``now``; False if another sweep claimed this run first.

    The UPDATE only matches while ``next_run_at`` still holds the value this sweep read, so two
    overlapping sweeps cannot both run the same due check.
    """
    seen = monitor.next_run_at
    upcoming = next_run_after(monitor.schedule, max(now, seen))
    result = session.execute(
        update(Monitor)
        .where(Monitor.id == monitor.id, Monitor.next_run_at == seen)
        .values(next_run_at=upcoming, last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def monitored_models_without_monitor(session: Session, organization_id: str, models: list[str]) -> list[str]:
    """Those of ``models`` that have no monitor in the organization."""
    monitored = set(session.scalars(select(Monitor.model).where(Monitor.organization_id == organization_id)))
    return [model for model in models if model not in monitored]


def registry_monitored_models(session: Session, organization_id: str) -> list[str]:
    """Names of the organization's models that a registry integration records as monitored."""
    query = select(MonitoredModel.name).where(MonitoredModel.organization_id == organization_id).distinct()
    return sorted(session.scalars(query))


def model_is_known(session: Session, organization_id: str, model: str) -> bool:
    """Whether the organization has logged inferences of ``model`` or a registry records it as monitored."""
    logged = select(InferenceLog.id).where(InferenceLog.organization_id == organization_id, InferenceLog.model == model)
    if session.execute(logged.limit(1)).first() is not None:
        return True
    return model in registry_monitored_models(session, organization_id)
