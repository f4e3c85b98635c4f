"""``/organizations/{organization_id}/events``: how the monitoring core publishes events."""

from __future__ import annotations

from flask import Blueprint

from api.auth import require_organization_key
from api.db import db
from api.endpoint import endpoint
from api.schemas.events import EventAccepted, EventIn
from store.events import record_event

bp = Blueprint("events", __name__, url_prefix="/organizations/<organization_id>/events")
require_organization_key(bp)


@bp.post("")
@endpoint(body=EventIn, response=EventAccepted, status=202, problems=(401, 404, 422))
def publish_event(organization_id: str, body: EventIn):
    """Publish an event.

    The event is stored first and sent to the organization's matching webhooks right after
    (signed, retried, recorded in each webhook's history).
    """
    session = db()
    event = record_event(session, organization_id, body.type, body.data, project_id=body.project_id)
    session.commit()
    return EventAccepted(id=event.id)
