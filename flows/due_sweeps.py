"""Is a sweep due? Checks of each sweep deployment's work, each exactly the selection its flow works on.

The sweep gate (``stack/sweep_gate.py``, in every worker) runs these every few seconds and starts a
sweep's deployment only when its check finds work; the deployments' own Prefect schedules are the
slower backstop. A check reads and never claims, and answers with what it found (for the gate's log)
or ``None``: a sweep that would do nothing is not run.

Each check calls the store functions its sweep selects with, with the same cut-offs, so work is never
left to the backstop because a check and its sweep disagree (``tests/workers/test_sweep_gate.py`` runs
each sweep after its check and asserts that the check is then quiet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from store import deliveries, registry, throttles
from store.events import unpublished
from store.monitors import due_monitors
from store.thresholds import enabled_thresholds
from tasks.monitoring.recommendations import add_monitor_due
from tasks.monitoring.thresholds import LOG_METRIC_PREFIXES
from tasks.registry_tasks import DEFAULT_SYNC_INTERVAL_SECONDS, receipts_forgotten_before
from tasks.webhooks.settings import get_webhook_settings

Check = Callable[[Session, datetime], str | None]


def retry_sweep_due(session: Session, now: datetime) -> str | None:
    """``retry-due-deliveries``: a due retry or expired lease, a stranded or unemitted event, history to prune."""
    settings = get_webhook_settings()
    stranded_before = settings.stranded_before(now)
    if deliveries.due_delivery_ids(session, now, 1):
        return "a delivery's retry or expired lease is due"
    if deliveries.undispatched_event_ids(session, 1, written_before=stranded_before):
        return "an event no dispatcher fanned out"
    if unpublished(session, 1, stranded_before):
        return "an event not emitted to Prefect"
    if deliveries.settled_delivery_ids_before(session, settings.history_before(now), 1):
        return "settled deliveries past the history retention"
    if throttles.any_ended_cooldown(session, now):
        return "ended cooldowns"
    return None


def registry_sync_due(session: Session, now: datetime) -> str | None:
    """``registry-sync``: an integration whose sync interval has elapsed, or inbound receipts to forget."""
    due = registry.integrations_due_for_sync(session, now, DEFAULT_SYNC_INTERVAL_SECONDS)
    if due:
        return f"{len(due)} integration(s) due for a sync"
    if registry.any_inbound_receipt_before(session, receipts_forgotten_before(now)):
        return "inbound receipts past their retention"
    return None


def run_monitors_due(session: Session, now: datetime) -> str | None:
    """``run-monitors``: a due monitor, or a log-metric threshold (evaluated every run: its window moves)."""
    if due_monitors(session, now):
        return "a monitor's check is due"
    if enabled_thresholds(session, LOG_METRIC_PREFIXES):
        return "log-metric thresholds to evaluate"
    return None


def add_monitor_rule_due(session: Session, now: datetime) -> str | None:
    """``run-monitors``' add-monitor rule: a monitored model without a monitor or an open recommendation.

    Two index probes per model of every organization: the one check worth running once a minute only.
    """
    return "a monitored model without a drift monitor" if add_monitor_due(session, now) else None


@dataclass(frozen=True)
class SweepCheck:
    """What starts ``sweep`` (its deployment, ``flow/deployment`` as in prefect.yaml): ``finds`` answering
    with its work; ``every``: at most this often per gate (``None``: every round)."""

    sweep: str
    finds: Check
    every: float | None = None


RETRY_SWEEP = "retry-due-deliveries/retry-due-deliveries"
REGISTRY_SWEEP = "sync-registry/registry-sync"
MONITORS_SWEEP = "run-monitors/run-monitors"

CHECKS: tuple[SweepCheck, ...] = (
    SweepCheck(RETRY_SWEEP, retry_sweep_due),
    SweepCheck(REGISTRY_SWEEP, registry_sync_due),
    SweepCheck(MONITORS_SWEEP, run_monitors_due),
    SweepCheck(MONITORS_SWEEP, add_monitor_rule_due, every=60),
)
