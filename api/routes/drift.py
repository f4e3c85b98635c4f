"""``/organizations/{organization_id}/drift-checks`` and ``/drift-metrics``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint
from api.errors import NotFound
from api.pagination import paginate
from api.schemas.common import Page
from api.schemas.monitoring import DriftCheckIn, DriftCheckOut, DriftCheckQuery, DriftMetricOut, DriftMetricQuery
from api.services.drift_runs import drift_check_summary, run_drift_check
from store.drift import get_drift_check, list_drift_checks_query, list_drift_metrics_query
from store.models import DriftCheck, DriftMetric

checks_bp = Blueprint("drift_checks", __name__, url_prefix="/organizations/<organization_id>/drift-checks")
metrics_bp = Blueprint("drift_metrics", __name__, url_prefix="/organizations/<organization_id>/drift-metrics")
require_organization_key(checks_bp, owned={"check_id": DriftCheck})
require_organization_key(metrics_bp)


def drift_check_out(summary: dict[str, Any]) -> DriftCheckOut:
    return DriftCheckOut.model_validate(
        {
            **summary,
            "reference": {"from_": summary["reference"]["from"], "to": summary["reference"]["to"]},
            "current": {"from_": summary["current"]["from"], "to": summary["current"]["to"]},
        }
    )


def drift_metric_out(metric: DriftMetric) -> DriftMetricOut:
    return DriftMetricOut(
        id=metric.id,
        organization_id=metric.organization_id,
        project_id=metric.project_id,
        check_id=metric.check_id,
        model=metric.model,
        model_version=metric.model_version,
        feature=metric.feature,
        method=metric.method,
        value=metric.value,
        threshold=metric.threshold,
        drifted=metric.drifted,
        p_value=metric.p_value,
        reference={"from_": metric.reference_from, "to": metric.reference_to},
        current={"from_": metric.current_from, "to": metric.current_to},
        computed_at=metric.computed_at,
    )


@checks_bp.post("")
@endpoint(body=DriftCheckIn, response=DriftCheckOut, status=201, problems=(401, 404, 422, 502))
def create_drift_check(organization_id: str, body: DriftCheckIn):
    """Run a drift check now (the `detect-drift` flow) and answer with its per-feature results.

    Each feature's `value` is the statistic; `drifted` compares it (or its p-value, for the ks,
    chi-square and z tests) with `threshold`. A check with drifted features emits `drift.detected`.
    """
    summary = run_drift_check(db(), organization_id, body)
    location = url_for(".get_check", organization_id=organization_id, check_id=summary["id"])
    return Created(drift_check_out(summary), location)


@checks_bp.get("/<check_id>")
@endpoint(response=DriftCheckOut, problems=(401, 404))
def get_check(organization_id: str, check_id: str):
    """Get a drift check with its per-feature results."""
    check = get_drift_check(db(), organization_id, check_id)
    if check is None:
        raise NotFound(f"No drift check {check_id!r}.")
    return drift_check_out(drift_check_summary(db(), check))


@checks_bp.get("")
@endpoint(query=DriftCheckQuery, response=Page[DriftCheckOut], problems=(401, 404, 422))
def list_checks(organization_id: str, query: DriftCheckQuery):
    """List drift checks (API and monitor runs), optionally of one model."""
    checks, cursor = paginate(db(), list_drift_checks_query(organization_id, query.model), DriftCheck.id, query)
    items = [drift_check_out(drift_check_summary(db(), check)) for check in checks]
    return Page[DriftCheckOut](items=items, next_cursor=cursor)


@metrics_bp.get("")
@endpoint(query=DriftMetricQuery, response=Page[DriftMetricOut], problems=(401, 404, 422))
def list_drift_metrics(organization_id: str, query: DriftMetricQuery):
    """List drift metrics (one per feature and check), by model, feature and computation time `[from, to)`."""
    statement = list_drift_metrics_query(organization_id, query.model, query.feature, query.from_, query.to)
    metrics, cursor = paginate(db(), statement, DriftMetric.id, query)
    return Page[DriftMetricOut](items=[drift_metric_out(m) for m in metrics], next_cursor=cursor)
