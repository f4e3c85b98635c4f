"""Monitors: a model's scheduled drift check, and when it is next due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import InferenceLog, Monitor, MonitoredModel, utcnow


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

    The next run is scheduled from now, so a changed schedule takes effect at once.
    """
    monitor = get_monitor(session, organization_id, model)
    created = monitor is None
    if monitor is None:
        monitor = Monitor(id=new_id("mon"), organization_id=organization_id, model=model)
        session.add(monitor)
    for name, value in fields.items():
        setattr(monitor, name, value)
    monitor.next_run_at = next_run_after(monitor.schedule, utcnow())
    return monitor, created


def delete_monitor(session: Session, monitor: Monitor) -> None:
    session.delete(monitor)


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
