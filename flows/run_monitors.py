"""``run-monitors``: the scheduled sweep that runs due drift monitors and the log-based rules."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.detect_drift import detect_drift
from tasks.monitoring.monitors import open_due_monitor_checks
from tasks.monitoring.recommendations import recommend_monitors
from tasks.monitoring.thresholds import evaluate_log_thresholds


@flow(name="run-monitors")
async def run_monitors() -> dict[str, Any]:
    """Run every due monitor's drift check, then evaluate log thresholds and the add-monitor rule.

    Each check is a ``detect-drift`` subflow run, so one failing check neither stops the others nor
    hides in the sweep's logs.
    """
    check_ids = open_due_monitor_checks()
    states = [await detect_drift(check_id, return_state=True) for check_id in check_ids]
    evaluations = evaluate_log_thresholds()
    recommendations = recommend_monitors()
    return {
        "checks": check_ids,
        "failed_checks": [check_id for check_id, state in zip(check_ids, states, strict=True) if state.is_failed()],
        "threshold_evaluations": len(evaluations),
        "breaches": sum(1 for evaluation in evaluations if evaluation["breached"]),
        "recommendations": recommendations,
    }
