"""Recommendations: at most one open per kind and model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import Recommendation, utcnow

KINDS = ("retrain", "scale_endpoint", "add_monitor")


def open_recommendation_exists(session: Session, organization_id: str, model: str, kind: str) -> bool:
    query = select(Recommendation.id).where(
        Recommendation.organization_id == organization_id,
        Recommendation.model == model,
        Recommendation.kind == kind,
        Recommendation.status == "open",
    )
    return session.execute(query.limit(1)).first() is not None


def create_recommendation(
    session: Session,
    organization_id: str,
    model: str,
    kind: str,
    reason: str,
    details: dict[str, Any],
    project_id: str | None = None,
) -> Recommendation | None:
    """Add an open recommendation unless one of the same kind and model is open; return it or None.

    The unique (organization, model, kind, open_slot) index backs this check against a concurrent
    writer: the loser's flush fails inside a savepoint and it returns None.
    """
    if open_recommendation_exists(session, organization_id, model, kind):
        return None
    recommendation = Recommendation(
        id=new_id("rec"),
        organization_id=organization_id,
        project_id=project_id,
        model=model,
        kind=kind,
        reason=reason,
        details=details,
        status="open",
        open_slot=1,
    )
    try:
        with session.begin_nested():
            session.add(recommendation)
    except IntegrityError:
        return None
    return recommendation


def get_recommendation(session: Session, organization_id: str, recommendation_id: str) -> Recommendation | None:
    recommendation = session.get(Recommendation, recommendation_id)
    if recommendation is None or recommendation.organization_id != organization_id:
        return None
    return recommendation


def dismiss_recommendation(session: Session, recommendation: Recommendation) -> None:
    """Close it, freeing its (kind, model) slot for a future recommendation."""
    if recommendation.status == "open":
        recommendation.status = "dismissed"
        recommendation.open_slot = None
        recommendation.dismissed_at = utcnow()


def list_recommendations_query(
    organization_id: str, model: str | None = None, kind: str | None = None, status: str | None = None
) -> Select[tuple[Recommendation]]:
    query = select(Recommendation).where(Recommendation.organization_id == organization_id)
    if model is not None:
        query = query.where(Recommendation.model == model)
    if kind is not None:
        query = query.where(Recommendation.kind == kind)
    if status is not None:
        query = query.where(Recommendation.status == status)
    return query
