"""``/organizations/{organization_id}/recommendations``: advice from the recommendation rules."""

from __future__ import annotations

from flask import Blueprint

from api.auth import require_organization_key
from api.db import db
from api.endpoint import endpoint
from api.errors import NotFound
from api.pagination import paginate
from api.schemas.common import Page
from api.schemas.monitoring import RecommendationOut, RecommendationQuery
from store.models import Recommendation
from store.recommendations import dismiss_recommendation, get_recommendation, list_recommendations_query

bp = Blueprint("recommendations", __name__, url_prefix="/organizations/<organization_id>/recommendations")
require_organization_key(bp, owned={"recommendation_id": Recommendation})


def recommendation_out(recommendation: Recommendation) -> RecommendationOut:
    return RecommendationOut.model_validate(recommendation, from_attributes=True)


def _existing(organization_id: str, recommendation_id: str) -> Recommendation:
    recommendation = get_recommendation(db(), organization_id, recommendation_id)
    if recommendation is None:
        raise NotFound(f"No recommendation {recommendation_id!r}.")
    return recommendation


@bp.get("")
@endpoint(query=RecommendationQuery, response=Page[RecommendationOut], problems=(401, 404, 422))
def list_all(organization_id: str, query: RecommendationQuery):
    """List recommendations, by model, kind and status."""
    statement = list_recommendations_query(organization_id, query.model, query.kind, query.status)
    records, cursor = paginate(db(), statement, Recommendation.id, query)
    return Page[RecommendationOut](items=[recommendation_out(r) for r in records], next_cursor=cursor)


@bp.get("/<recommendation_id>")
@endpoint(response=RecommendationOut, problems=(401, 404))
def get_one(organization_id: str, recommendation_id: str):
    """Get a recommendation."""
    return recommendation_out(_existing(organization_id, recommendation_id))


@bp.post("/<recommendation_id>/dismiss")
@endpoint(response=RecommendationOut, problems=(401, 404))
def dismiss(organization_id: str, recommendation_id: str):
    """Dismiss a recommendation; the rule may recommend the same kind for the model again later."""
    recommendation = _existing(organization_id, recommendation_id)
    dismiss_recommendation(db(), recommendation)
    db().commit()
    return recommendation_out(recommendation)
