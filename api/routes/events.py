"""``/organizations/{organization_id}/events``: how the monitoring core publishes events;
``/event-types``: the catalog of every event type and its data."""

from __future__ import annotations

from flask import Blueprint

from api.auth import require_organization_key
from api.db import db
from api.endpoint import endpoint
from api.schemas.events import EventAccepted, EventIn, EventTypes, check_event_data, event_type_out
from store.event_catalog import CATALOG
from store.events import record_event

bp = Blueprint("events", __name__, url_prefix="/organizations/<organization_id>/events")
require_organization_key(bp)
catalog_bp = Blueprint("event_types", __name__, url_prefix="/organizations/<organization_id>/event-types")
require_organization_key(catalog_bp)


@bp.post("")
@endpoint(body=EventIn, response=EventAccepted, status=202, problems=(401, 404, 422))
def publish_event(organization_id: str, body: EventIn):
    """Publish an event.

    The event is stored first and sent to the organization's matching webhooks right after
    (signed, retried, recorded in each webhook's history). `data` must fit the type's schema
    (`GET .../event-types`): a 422 names the field that does not.
    """
    check_event_data(body)
    session = db()
    event = record_event(session, organization_id, body.type, body.data, project_id=body.project_id)
    session.commit()
    return EventAccepted(id=event.id)


@catalog_bp.get("")
@endpoint(response=EventTypes, problems=(401, 404))
def list_event_types(organization_id: str):  # noqa: ARG001 - the catalog is the same for every organization
    """List the event types.

    Every type a webhook may receive, with its description, the JSON Schema of its `data` and an
    example event. The same payloads are in `/openapi.json` under `webhooks`.
    """
    return EventTypes(items=[event_type_out(entry) for entry in CATALOG])
