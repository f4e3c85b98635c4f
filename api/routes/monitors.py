"""``/organizations/{organization_id}/models/{model}/monitor``: a model's scheduled drift check."""

from __future__ import annotations

from flask import Blueprint, Response, g, request, url_for
from pydantic import TypeAdapter, ValidationError

from api.auth import require_organization_key
from api.db import db
from api.endpoint import endpoint
from api.errors import NotFound, validation_problem
from api.schemas.monitoring import ModelName, MonitorIn, MonitorOut
from store.models import Monitor
from store.monitors import delete_monitor, get_monitor, model_is_known, put_monitor

bp = Blueprint("monitors", __name__, url_prefix="/organizations/<organization_id>/models/<path:model>/monitor")
require_organization_key(bp)
MODEL_NAME = TypeAdapter(ModelName)


@bp.before_request
def _known_model() -> None:
    # Runs after the key check: a model this organization has never logged nor registered is a 404
    # before the body is read, as for any other organization's resource.
    model = _model_name((request.view_args or {})["model"])
    if not model_is_known(db(), g.organization_id, model):
        raise NotFound(f"No model {model!r} in this organization (no inference logs, not registered).")


def monitor_out(monitor: Monitor) -> MonitorOut:
    return MonitorOut(
        id=monitor.id,
        organization_id=monitor.organization_id,
        model=monitor.model,
        model_version=monitor.model_version,
        reference={"from_": monitor.reference_from, "to": monitor.reference_to},
        window_seconds=monitor.window_seconds,
        method=monitor.method,
        threshold=monitor.threshold,
        features=monitor.features,
        schedule=monitor.schedule,
        enabled=monitor.enabled,
        next_run_at=monitor.next_run_at,
        last_run_at=monitor.last_run_at,
        last_check_id=monitor.last_check_id,
        drift_episode_event_id=monitor.drift_episode_event_id,
        created_at=monitor.created_at,
        updated_at=monitor.updated_at,
    )


def _model_name(model: str) -> str:
    """The path's model name, held to the rules of a model name in a body (length, no U+0000)."""
    try:
        return MODEL_NAME.validate_python(model)
    except ValidationError as error:
        raise validation_problem(error, prefix=("model",)) from None


def _existing(organization_id: str, model: str) -> Monitor:
    monitor = get_monitor(db(), organization_id, model)
    if monitor is None:
        raise NotFound(f"Model {model!r} has no monitor.")
    return monitor


@bp.put("")
@endpoint(body=MonitorIn, response=MonitorOut, problems=(401, 404, 422))
def put(organization_id: str, model: str, body: MonitorIn):
    """Create or replace the model's drift monitor (404 for a model without logs or registration).

    On its `schedule`, the `run-monitors` sweep compares the latest `window_seconds` of logs with the
    `reference` window (a `detect-drift` run per check). Answers 201 when created, 200 when replaced.
    """
    fields = {
        "model_version": body.model_version,
        "reference_from": body.reference.from_,
        "reference_to": body.reference.to,
        "window_seconds": body.window_seconds,
        "method": body.method,
        "threshold": body.threshold,
        "features": body.features,
        "schedule": body.schedule.model_dump(),
        "enabled": body.enabled,
    }
    monitor, created = put_monitor(db(), organization_id, model, fields)
    db().commit()
    response = Response(
        monitor_out(monitor).model_dump_json(), status=201 if created else 200, mimetype="application/json"
    )
    if created:
        response.headers["Location"] = url_for(".get", organization_id=organization_id, model=model)
    return response


@bp.get("")
@endpoint(response=MonitorOut, problems=(401, 404))
def get(organization_id: str, model: str):
    """Get the model's drift monitor."""
    return monitor_out(_existing(organization_id, model))


@bp.delete("")
@endpoint(status=204, problems=(401, 404))
def delete(organization_id: str, model: str):
    """Delete the model's drift monitor."""
    delete_monitor(db(), _existing(organization_id, model))
    db().commit()
