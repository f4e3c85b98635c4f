"""Prefect tasks of one drift check: read both windows, measure each feature, record the outcome.

The check's parameters live in its ``drift_checks`` row; the flow passes only the check id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from store import drift as drift_store
from store.db import session_scope
from store.drift import check_metrics, complete_drift_check
from store.events import new_event_id, record_event
from store.inference_logs import stream_window_features
from store.models import DriftCheck, DriftMetric, Monitor
from store.monitors import begin_drift_episode, end_drift_episode

# tasks.drift.samples and .methods (numpy, scipy: ~1 s) are imported where a check reads and measures its
# windows, not here: the run-monitors sweep imports this module every minute and most sweeps run no check.


@dataclass
class CheckWindows:
    """The feature columns of the check's reference and current windows, with their row counts."""

    check_id: str
    method: str
    threshold: float | None
    features: list[str] | None
    reference: dict[str, list[Any]]
    current: dict[str, list[Any]]
    reference_count: int
    current_count: int


class _Counter:
    """Counts the rows an iterator yields as they stream past."""

    def __init__(self, rows):
        self.rows, self.count = rows, 0

    def __iter__(self):
        for row in self.rows:
            self.count += 1
            yield row


def _read_window(session, check: DriftCheck, start, end) -> tuple[dict[str, list[Any]], int]:
    from tasks.drift.samples import collect_columns  # numpy: see the note on the imports

    rows = _Counter(
        stream_window_features(session, check.organization_id, check.model, check.model_version, start, end)
    )
    names = set(check.features) if check.features else None
    return collect_columns(rows, names), rows.count


# Big inputs (whole windows) must not be hashed into cache keys, and a database read is never cacheable.
@task(name="load-check-windows", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def load_check_windows(check_id: str) -> CheckWindows:
    """Read the feature values of the check's two windows (an index range scan each)."""
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is None:
            raise LookupError(f"drift check {check_id} does not exist")
        check.flow_run_id = flow_run.id
        reference, reference_count = _read_window(session, check, check.reference_from, check.reference_to)
        current, current_count = _read_window(session, check, check.current_from, check.current_to)
        return CheckWindows(
            check.id, check.method, check.threshold, check.features, reference, current, reference_count, current_count
        )


@task(name="measure-drift", cache_policy=NO_CACHE)
def measure_drift(windows: CheckWindows) -> list[dict[str, Any]]:
    """One result per feature present in both windows: the statistic, its threshold and verdict."""
    from tasks.drift.methods import measure  # numpy and scipy: see the note on the imports
    from tasks.drift.samples import feature_samples

    results = []
    for sample in feature_samples(windows.reference, windows.current, windows.features):
        result = measure(sample, windows.method, windows.threshold)
        results.append(
            {
                "feature": sample.feature,
                "method": result.method,
                "value": result.value,
                "threshold": result.threshold,
                "drifted": result.drifted,
                "p_value": result.p_value,
            }
        )
    return results


def _window(start, end) -> dict[str, str]:
    return {"from": start.isoformat(), "to": end.isoformat()}


def drift_event_data(check: DriftCheck, drifted: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``data`` of a ``drift.detected`` event: the model, the drifted features and both windows."""
    return {
        "check_id": check.id,
        "model": check.model,
        "model_version": check.model_version,
        "method": check.method,
        "features": [
            {k: result[k] for k in ("feature", "method", "value", "threshold", "p_value")} for result in drifted
        ],
        "window": {
            "reference": _window(check.reference_from, check.reference_to),
            "current": _window(check.current_from, check.current_to),
        },
    }


@task(name="record-drift-check", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def record_drift_check(check_id: str, results: list[dict[str, Any]], reference_count: int, current_count: int) -> None:
    """Write the drift-metric rows and, in the same transaction, one ``drift.detected`` if any drifted.

    A monitor's check also moves the monitor's drift episode: a drifted check begins one (or carries
    on the one in progress: ``episode_event_id`` names its first event), a clean check ends it with
    ``drift.resolved``. Idempotent: a retry after a commit that did happen finds the check completed
    and does nothing.
    """
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is None or check.status != "pending":
            return
        drifted = complete_drift_check(session, check, results, reference_count, current_count)
        monitor = session.get(Monitor, check.monitor_id) if check.monitor_id else None
        if drifted:
            event_id = new_event_id()
            data = drift_event_data(check, drifted)
            if monitor is not None:
                data["monitor_id"] = monitor.id
                data["episode_event_id"] = begin_drift_episode(session, monitor.id, event_id)
            record_event(session, check.organization_id, "drift.detected", data, check.project_id, event_id=event_id)
        elif monitor is not None:
            end_drift_episode(session, monitor, "recovered", check_id=check.id)


@task(name="close-drift-check", cache_policy=NO_CACHE)
def close_drift_check(check_id: str, status: str, detail: str) -> None:
    """Record why a check produced no metrics (``no_data``: a window holds no logs)."""
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is not None and check.status == "pending":
            drift_store.close_drift_check(session, check, status, detail)


def metric_result(metric: DriftMetric) -> dict[str, Any]:
    return {
        "feature": metric.feature,
        "method": metric.method,
        "value": metric.value,
        "threshold": metric.threshold,
        "drifted": metric.drifted,
        "p_value": metric.p_value,
    }


def check_summary(check: DriftCheck, metrics: list[DriftMetric]) -> dict[str, Any]:
    """The check as the API shows it: its parameters, status and one entry per feature."""
    return {
        "id": check.id,
        "organization_id": check.organization_id,
        "model": check.model,
        "model_version": check.model_version,
        "method": check.method,
        "threshold": check.threshold,
        "status": check.status,
        "status_detail": check.status_detail,
        "reference": {"from": check.reference_from, "to": check.reference_to},
        "current": {"from": check.current_from, "to": check.current_to},
        "reference_count": check.reference_count,
        "current_count": check.current_count,
        "monitor_id": check.monitor_id,
        "features": [metric_result(metric) for metric in metrics],
        "drifted": bool(check.drifted),
        "created_at": check.created_at,
        "completed_at": check.completed_at,
    }


@task(name="summarize-drift-check", cache_policy=NO_CACHE)
def summarize_drift_check(check_id: str) -> dict[str, Any]:
    """Read back the recorded check with its metrics."""
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is None:
            raise LookupError(f"drift check {check_id} does not exist")
        return check_summary(check, check_metrics(session, check_id))


def mark_check_failed(check_id: str, detail: str) -> None:
    """Record that the check's flow failed, so it does not stay pending forever."""
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is not None and check.status == "pending":
            drift_store.close_drift_check(session, check, "failed", detail)
