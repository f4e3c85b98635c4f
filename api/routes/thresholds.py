"""``/organizations/{organization_id}/thresholds``: rules whose breach emits ``threshold.breached``."""

from __future__ import annotations

from flask import Blueprint, url_for
from sqlalchemy import select

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint
from api.errors import NotFound
from api.pagination import paginate
from api.schemas.common import Page, PageQuery
from api.schemas.monitoring import ThresholdIn, ThresholdOut, ThresholdStateOut
from store.models import Threshold, ThresholdState
from store.thresholds import create_threshold, delete_threshold, get_threshold, list_thresholds_query, replace_threshold

bp = Blueprint("thresholds", __name__, url_prefix="/organizations/<organization_id>/thresholds")
require_organization_key(bp, owned={"threshold_id": Threshold})


def threshold_out(threshold: Threshold) -> ThresholdOut:
    states = db().scalars(
        select(ThresholdState).where(ThresholdState.threshold_id == threshold.id).order_by(ThresholdState.model)
    )
    return ThresholdOut(
        id=threshold.id,
        organization_id=threshold.organization_id,
        project_id=threshold.project_id,
        model=threshold.model,
        metric=threshold.metric,
        operator=threshold.operator,
        value=threshold.value,
        window_seconds=threshold.window_seconds,
        severity=threshold.severity,
        enabled=threshold.enabled,
        states=[ThresholdStateOut.model_validate(state, from_attributes=True) for state in states],
        created_at=threshold.created_at,
        updated_at=threshold.updated_at,
    )


def _existing(organization_id: str, threshold_id: str) -> Threshold:
    threshold = get_threshold(db(), organization_id, threshold_id)
    if threshold is None:
        raise NotFound(f"No threshold {threshold_id!r}.")
    return threshold


@bp.post("")
@endpoint(body=ThresholdIn, response=ThresholdOut, status=201, problems=(401, 404, 422))
def create(organization_id: str, body: ThresholdIn):
    """Create a threshold rule.

    `drift.*` metrics are evaluated after each drift check of the model; `latency_ms.*`,
    `prediction.mean` and `records.count` by the `run-monitors` sweep over the last `window_seconds`.
    A breach emits `threshold.breached` once per episode; the first value back within bounds emits
    `threshold.resolved` naming it.
    """
    threshold = create_threshold(db(), organization_id, body.model_dump())
    db().commit()
    location = url_for(".get_one", organization_id=organization_id, threshold_id=threshold.id)
    return Created(threshold_out(threshold), location)


@bp.get("")
@endpoint(query=PageQuery, response=Page[ThresholdOut], problems=(401, 404, 422))
def list_all(organization_id: str, query: PageQuery):
    """List threshold rules with their breach state per model."""
    records, cursor = paginate(db(), list_thresholds_query(organization_id), Threshold.id, query)
    return Page[ThresholdOut](items=[threshold_out(r) for r in records], next_cursor=cursor)


@bp.get("/<threshold_id>")
@endpoint(response=ThresholdOut, problems=(401, 404))
def get_one(organization_id: str, threshold_id: str):
    """Get a threshold rule with its breach state per model."""
    return threshold_out(_existing(organization_id, threshold_id))


@bp.put("/<threshold_id>")
@endpoint(body=ThresholdIn, response=ThresholdOut, problems=(401, 404, 422))
def update(organization_id: str, threshold_id: str, body: ThresholdIn):
    """Replace a threshold rule; its breach episodes start over.

    An episode in progress ends with `threshold.resolved` (reason `threshold_changed`).
    """
    threshold = _existing(organization_id, threshold_id)
    replace_threshold(db(), threshold, body.model_dump())
    db().commit()
    return threshold_out(threshold)


@bp.delete("/<threshold_id>")
@endpoint(status=204, problems=(401, 404))
def delete(organization_id: str, threshold_id: str):
    """Delete a threshold rule.

    An episode in progress ends with `threshold.resolved` (reason `threshold_deleted`).
    """
    delete_threshold(db(), _existing(organization_id, threshold_id))
    db().commit()
