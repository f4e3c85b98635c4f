"""``detect-drift``: one drift check, from its windows of inference logs to metrics, events and advice."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.drift.check import (
    close_drift_check,
    load_check_windows,
    mark_check_failed,
    measure_drift,
    record_drift_check,
    summarize_drift_check,
)
from tasks.monitoring.recommendations import recommend_retraining
from tasks.monitoring.thresholds import evaluate_drift_thresholds


def _record_failure(flow, flow_run, state) -> None:  # noqa: ARG001 - Prefect's hook signature
    mark_check_failed(flow_run.parameters["check_id"], str(state.message or "the detect-drift flow failed"))


# Async: called in-process by the API, an async flow costs ~0.1 s of Prefect overhead, a sync one ~1 s.
@flow(name="detect-drift", flow_run_name="detect-drift-{check_id}", on_failure=[_record_failure])
async def detect_drift(check_id: str) -> dict[str, Any]:
    """Compare the check's current window with its reference, feature by feature, and record it all.

    Args:
        check_id: a pending ``drift_checks`` row, which holds the model, windows, method and threshold.

    Returns:
        The recorded check with one result per feature (see ``tasks.drift.check.check_summary``).
    """
    windows = load_check_windows(check_id)
    if windows.reference_count == 0 or windows.current_count == 0:
        empty = "reference" if windows.reference_count == 0 else "current"
        close_drift_check(check_id, "no_data", f"the {empty} window holds no inference logs of the model")
        return summarize_drift_check(check_id)
    results = measure_drift(windows)
    record_drift_check(check_id, results, windows.reference_count, windows.current_count)
    evaluate_drift_thresholds(check_id)
    recommend_retraining(check_id)
    return summarize_drift_check(check_id)
