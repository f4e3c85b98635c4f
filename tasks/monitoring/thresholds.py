"""Threshold evaluation: drift metrics after each check, inference-log metrics on a schedule.

Metrics a threshold can watch:

* ``drift.<method>`` (``ks``, ``psi``, ``js``, ``chisquare``, ``ztest``, ``wasserstein``): the largest
  value of that statistic over the check's features; ``drift.share``: the share of drifted features.
* ``latency_ms.<mean|p50|p90|p95|p99|max>``, ``prediction.mean`` (numeric and boolean predictions),
  ``records.count``: over the model's logs of the last ``window_seconds`` (default 3600).

A metric without data (no log in the window, no feature measured with that method) is not evaluated,
so it neither opens nor closes an episode. ``threshold.breached`` is emitted when an episode opens,
``threshold.resolved`` (naming the breach event) when it closes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from store.db import session_scope
from store.drift import check_metrics
from store.events import new_event_id, record_event
from store.inference_logs import models_logging_since, window_column
from store.models import DriftCheck, DriftMetric, Threshold, utcnow
from store.thresholds import enabled_thresholds, record_evaluation, resolved_data, thresholds_for
from tasks.monitoring.recommendations import recommend_scaling

DEFAULT_WINDOW_SECONDS = 3600
DRIFT_METRICS = ("ks", "psi", "js", "chisquare", "ztest", "wasserstein", "share")
LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99", "max")
LOG_METRICS = tuple(f"latency_ms.{name}" for name in LATENCY_STATISTICS) + ("prediction.mean", "records.count")
LOG_METRIC_PREFIXES = ("latency_ms.", "prediction.", "records.")
METRICS = tuple(f"drift.{name}" for name in DRIFT_METRICS) + LOG_METRICS


def drift_metric_value(metric: str, metrics: list[DriftMetric]) -> tuple[float, str | None] | None:
    """The value of ``drift.<name>`` over one check's rows, with the feature it came from (if one)."""
    name = metric.removeprefix("drift.")
    if not metrics:
        return None
    if name == "share":
        return sum(m.drifted for m in metrics) / len(metrics), None
    measured = [m for m in metrics if m.method == name]
    if not measured:
        return None
    worst = max(measured, key=lambda m: m.value)
    return worst.value, worst.feature


def log_metric_value(
    session: Session, threshold: Threshold, model: str, start: datetime, end: datetime
) -> float | None:
    """The value of a log metric over the model's logs in ``[start, end)``; None without data."""
    family, _, statistic = threshold.metric.partition(".")
    if threshold.metric == "records.count":
        return float(len(window_column(session, threshold.organization_id, model, "id", start, end)))
    if family == "latency_ms":
        values = window_column(session, threshold.organization_id, model, "latency_ms", start, end)
        return statistic_of(statistic, values) if values else None
    if threshold.metric == "prediction.mean":
        values = [
            float(v)
            for v in window_column(session, threshold.organization_id, model, "prediction", start, end)
            if isinstance(v, (int, float))  # bool is an int: True counts as 1
        ]
        return statistic_of("mean", values) if values else None
    raise ValueError(f"unknown log metric {threshold.metric!r}")


def statistic_of(statistic: str, values: list[Any]) -> float:
    """One of ``LATENCY_STATISTICS`` (``mean``, ``max``, ``p<q>``) over a window's values (not empty)."""
    import numpy as np  # here, not at the top: the run-monitors sweep imports this module every minute

    array = np.asarray(values, dtype=float)
    if statistic == "mean":
        return float(np.mean(array))
    if statistic == "max":
        return float(np.max(array))
    if statistic in LATENCY_STATISTICS:
        return float(np.percentile(array, int(statistic.removeprefix("p"))))
    raise KeyError(statistic)


def evaluate(
    session: Session,
    threshold: Threshold,
    model: str,
    value: float,
    window: dict[str, Any],
    now: datetime,
    **extra: Any,
) -> dict[str, Any]:
    """Record one evaluation; emit ``threshold.breached`` if it opens an episode, ``threshold.resolved``
    if it closes one. Returns its summary."""
    state, change = record_evaluation(session, threshold, model, value, now)
    summary = {
        "threshold_id": threshold.id,
        "model": model,
        "metric": threshold.metric,
        "operator": threshold.operator,
        "threshold": threshold.value,
        "value": value,
        "severity": threshold.severity,
        "window": window,
        **extra,
    }
    if change.began:
        state.episode_event_id = new_event_id()
        record_event(
            session,
            threshold.organization_id,
            "threshold.breached",
            summary,
            threshold.project_id,
            event_id=state.episode_event_id,
        )
    elif change.ended:
        data = resolved_data(
            threshold, model, value, change.ended_event_id, change.ended_started_at, window=window, **extra
        )
        record_event(session, threshold.organization_id, "threshold.resolved", data, threshold.project_id)
    return {**summary, "breached": state.breached, "consecutive_breaches": state.consecutive_breaches}


@task(name="evaluate-drift-thresholds", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def evaluate_drift_thresholds(check_id: str) -> list[dict[str, Any]]:
    """After a check: evaluate the ``drift.*`` thresholds that apply to its model."""
    now = utcnow()
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is None or check.status != "completed":
            return []
        metrics = check_metrics(session, check_id)
        window = {"from": check.current_from.isoformat(), "to": check.current_to.isoformat()}
        evaluations = []
        for threshold in thresholds_for(session, check.organization_id, check.model, "drift."):
            measured = drift_metric_value(threshold.metric, metrics)
            if measured is None:
                continue
            value, feature = measured
            extra = {"check_id": check.id, **({"feature": feature} if feature else {})}
            evaluations.append(evaluate(session, threshold, check.model, value, window, now, **extra))
        return evaluations


@task(name="evaluate-log-thresholds", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def evaluate_log_thresholds(now: datetime | None = None) -> list[dict[str, Any]]:
    """On schedule: evaluate every log-metric threshold over its window ending ``now``.

    A threshold without a model applies to each model of its organization that logged in the window.
    A latency breach that reaches 3 consecutive evaluations also recommends ``scale_endpoint``.
    """
    now = now or utcnow()
    evaluations = []
    with session_scope() as session:
        for threshold in enabled_thresholds(session, LOG_METRIC_PREFIXES):
            start = now - timedelta(seconds=threshold.window_seconds or DEFAULT_WINDOW_SECONDS)
            window = {"from": start.isoformat(), "to": now.isoformat()}
            models = (
                [threshold.model]
                if threshold.model
                else models_logging_since(session, threshold.organization_id, start)
            )
            for model in models:
                value = log_metric_value(session, threshold, model, start, now)
                if value is None:
                    continue
                evaluation = evaluate(session, threshold, model, value, window, now)
                recommend_scaling(session, threshold.organization_id, model, evaluation)
                evaluations.append(evaluation)
    return evaluations
