"""``/organizations/{organization_id}/exports``: where inference logs, drift metrics and events are exported."""

from __future__ import annotations

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint, record_views
from api.schemas.common import masked
from api.schemas.exports import ElasticsearchExportUpdate, ExportIn, ExportOut, ExportUpdate
from api.services.export_schedules import apply_schedule, drop_schedule
from api.services.export_templates import prepare_sink
from api.services.exports import exports
from store.models import Export

bp = Blueprint("exports", __name__, url_prefix="/organizations/<organization_id>/exports")
require_organization_key(bp, owned={"export_id": Export})

def export_out(record: Export) -> ExportOut:
    return ExportOut.of(record, credentials=masked(record.secret_fields))


record_views(
    bp, exports, ExportOut, export_out, id_arg="export_id",
    list_view=("list_exports", "List all export configurations."),
    get_view=("get_export", "Get export configuration details."),
)


@bp.post("")
@endpoint(body=ExportIn, response=ExportOut, status=201, problems=(401, 404, 409, 422, 502))
def create_export(organization_id: str, body):
    """Create a new export configuration.

    Credentials are stored in a Prefect block document, never in the ModelPulse database.
    Elasticsearch: the index templates (and ILM policies) are installed now unless
    `config.manage_templates` is false; if that fails, the export is still created and
    `status_detail` says why (runs and `POST .../test` install them again).
    """
    record = exports.create(db(), organization_id, body)
    apply_schedule(db(), record)
    prepare_sink(db(), record)
    location = url_for(".get_export", organization_id=organization_id, export_id=record.id)
    return Created(export_out(record), location)


@bp.put("/<export_id>")
@endpoint(body=ExportUpdate, response=ExportOut, problems=(401, 404, 409, 422, 502))
def update_export(organization_id: str, export_id: str, body):
    """Update an export configuration.

    A full replace of the non-secret fields; a credential left out, or sent as "********", keeps its value,
    unless the export moves to another origin (`url`, `hec_url`, `site`, `api_url`): then every stored
    credential must be sent again (422 naming each).
    Elasticsearch: a `config.mode` left out keeps the stored mode; templates are installed again.
    """
    record = exports.get(db(), organization_id, export_id)
    if isinstance(body, ElasticsearchExportUpdate):
        body = body.keeping_mode(record.type, record.config)
    record = exports.replace(db(), record, body)
    apply_schedule(db(), record)
    prepare_sink(db(), record)
    return export_out(record)


@bp.delete("/<export_id>")
@endpoint(status=204, problems=(401, 404, 502))
def delete_export(organization_id: str, export_id: str):
    """Delete an export configuration and its stored credentials."""
    record = exports.get(db(), organization_id, export_id)
    drop_schedule(record)
    exports.delete(db(), record)
