"""Drift checks and their drift-metric rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import DriftCheck, DriftMetric, utcnow


def create_drift_check(session: Session, organization_id: str, **fields: Any) -> DriftCheck:
    """Add a pending check (model, windows, method, threshold, features...) and return it."""
    check = DriftCheck(id=new_id("chk"), organization_id=organization_id, status="pending", **fields)
    session.add(check)
    return check


def get_drift_check(session: Session, organization_id: str, check_id: str) -> DriftCheck | None:
    """The organization's check with this id, or None (another organization's check is None too)."""
    check = session.get(DriftCheck, check_id)
    return check if check is not None and check.organization_id == organization_id else None


def complete_drift_check(
    session: Session, check: DriftCheck, results: list[dict[str, Any]], reference_count: int, current_count: int
) -> list[dict[str, Any]]:
    """Write one drift-metric row per feature result and mark the check completed.

    Args:
        results: dicts with ``feature``, ``method``, ``value``, ``threshold``, ``drifted``, ``p_value``.

    Returns:
        The results of the drifted features.
    """
    now = utcnow()
    if results:
        session.execute(
            insert(DriftMetric.__table__),
            [
                {
                    **result,
                    "organization_id": check.organization_id,
                    "project_id": check.project_id,
                    "check_id": check.id,
                    "model": check.model,
                    "model_version": check.model_version,
                    "reference_from": check.reference_from,
                    "reference_to": check.reference_to,
                    "current_from": check.current_from,
                    "current_to": check.current_to,
                    "computed_at": now,
                }
                for result in results
            ],
        )
    drifted = [result for result in results if result["drifted"]]
    check.status = "completed"
    check.drifted = bool(drifted)
    check.reference_count = reference_count
    check.current_count = current_count
    check.completed_at = now
    return drifted


def close_drift_check(session: Session, check: DriftCheck, status: str, detail: str) -> None:
    """Mark a check that produced no metrics (``no_data`` or ``failed``) with the reason."""
    check.status = status
    check.status_detail = detail[:2000]
    check.completed_at = utcnow()


def check_metrics(session: Session, check_id: str) -> list[DriftMetric]:
    """The drift-metric rows of one check, in the order they were written."""
    return list(session.scalars(select(DriftMetric).where(DriftMetric.check_id == check_id).order_by(DriftMetric.id)))


def list_drift_checks_query(organization_id: str, model: str | None = None) -> Select[tuple[DriftCheck]]:
    """An organization's checks (optionally one model's)."""
    query = select(DriftCheck).where(DriftCheck.organization_id == organization_id)
    if model is not None:
        query = query.where(DriftCheck.model == model)
    return query


def list_drift_metrics_query(
    organization_id: str,
    model: str | None = None,
    feature: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select[tuple[DriftMetric]]:
    """An organization's drift metrics, filtered by model, feature and ``[start, end)`` of computation."""
    query = select(DriftMetric).where(DriftMetric.organization_id == organization_id)
    if model is not None:
        query = query.where(DriftMetric.model == model)
    if feature is not None:
        query = query.where(DriftMetric.feature == feature)
    if start is not None:
        query = query.where(DriftMetric.computed_at >= start)
    if end is not None:
        query = query.where(DriftMetric.computed_at < end)
    return query


def features_drifted_in_latest_checks(session: Session, organization_id: str, model: str, count: int) -> list[str]:
    """Features that drifted in each of the model's ``count`` latest completed checks (fewer checks: none)."""
    check_ids = list(
        session.scalars(
            select(DriftCheck.id)
            .where(
                DriftCheck.organization_id == organization_id,
                DriftCheck.model == model,
                DriftCheck.status == "completed",
            )
            .order_by(DriftCheck.created_at.desc(), DriftCheck.id.desc())
            .limit(count)
        )
    )
    if len(check_ids) < count:
        return []
    query = (
        select(DriftMetric.feature)
        .where(DriftMetric.check_id.in_(check_ids), DriftMetric.drifted.is_(True))
        .group_by(DriftMetric.feature)
        .having(func.count(func.distinct(DriftMetric.check_id)) == count)
        .order_by(DriftMetric.feature)
    )
    return list(session.scalars(query))
