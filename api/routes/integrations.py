"""``/organizations/{organization_id}/integrations``: connections to model registries."""

from __future__ import annotations

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint, record_views
from api.schemas.common import masked
from api.schemas.integrations import IntegrationIn, IntegrationOut, IntegrationUpdate
from api.services.integrations import integrations
from api.services.registry_push import push_out
from store.models import Integration

bp = Blueprint("integrations", __name__, url_prefix="/organizations/<organization_id>/integrations")
require_organization_key(bp, owned={"integration_id": Integration})

def integration_out(record: Integration) -> IntegrationOut:
    return IntegrationOut.of(record, credentials=masked(record.secret_fields), push=push_out(record))


record_views(
    bp, integrations, IntegrationOut, integration_out, id_arg="integration_id",
    list_view=("list_integrations", "List all integrations."),
    get_view=("get_integration", "Get integration details."),
)


@bp.post("")
@endpoint(body=IntegrationIn, response=IntegrationOut, status=201, problems=(401, 404, 409, 422, 502, 504))
def create_integration(organization_id: str, body):
    """Create a new integration.

    Credentials are stored in a Prefect block document, never in the ModelPulse database. With
    `config.push_events`, an MLflow integration registers a webhook on its server (502 if MLflow
    refuses; 422 without MODELPULSE_PUBLIC_URL) and a SageMaker one needs `credentials.events_api_key`.
    """
    record = integrations.create(db(), organization_id, body)
    location = url_for(".get_integration", organization_id=organization_id, integration_id=record.id)
    return Created(integration_out(record), location)


@bp.put("/<integration_id>")
@endpoint(body=IntegrationUpdate, response=IntegrationOut, problems=(401, 404, 409, 422, 502, 504))
def update_integration(organization_id: str, integration_id: str, body):
    """Update an integration.

    A full replace of the non-secret fields; a credential left out, or sent as "********", keeps its value,
    unless the integration moves to another origin (`tracking_uri`, `region_name`, `endpoint_url`,
    `api_endpoint`, `location`): then every stored credential must be sent again (422 naming each).
    The MLflow webhook of `config.push_events` follows: pointed at the current URL, moved to a new
    server, or deleted when push is turned off.
    """
    record = integrations.get(db(), organization_id, integration_id)
    return integration_out(integrations.replace(db(), record, body))


@bp.delete("/<integration_id>")
@endpoint(status=204, problems=(401, 404, 502))
def delete_integration(organization_id: str, integration_id: str):
    """Delete an integration and its stored credentials (and its MLflow webhook, if MLflow answers)."""
    integrations.delete(db(), integrations.get(db(), organization_id, integration_id))
