"""``/organizations/{organization_id}/inference-logs``: the ingestion hot path and its listing."""

from __future__ import annotations

from flask import Blueprint

from api.auth import require_organization_key
from api.db import db
from api.endpoint import endpoint
from api.pagination import paginate
from api.schemas.common import Page
from api.schemas.monitoring import InferenceLogOut, InferenceLogQuery, InferenceLogsAccepted, InferenceLogsIn
from store.inference_logs import insert_inference_logs, list_inference_logs_query
from store.models import InferenceLog, utcnow

bp = Blueprint("inference_logs", __name__, url_prefix="/organizations/<organization_id>/inference-logs")
require_organization_key(bp)


def inference_log_out(record: InferenceLog) -> InferenceLogOut:
    return InferenceLogOut.model_validate(record, from_attributes=True)


@bp.post("")
@endpoint(
    body=InferenceLogsIn,
    response=InferenceLogsAccepted,
    status=202,
    problems=(401, 404, 422),
    body_limit="MAX_INFERENCE_LOG_BODY_BYTES",
)
def ingest(organization_id: str, body: InferenceLogsIn):
    """Ingest up to 10,000 inference records.

    The body may be up to `MODELPULSE_MAX_INFERENCE_LOG_BODY_BYTES` (16 MiB by default) rather than
    the 1 MiB of other operations.

    All or nothing: one malformed record rejects the whole request with 422 naming it
    (`records[1].features`), and nothing of the request is stored.
    """
    now = utcnow()
    rows = [
        {
            "project_id": record.project_id,
            "model": record.model,
            "model_version": record.model_version,
            "timestamp": record.timestamp or now,
            "request_id": record.request_id,
            "features": record.features,
            "prediction": record.prediction,
            "label": record.label,
            "latency_ms": record.latency_ms,
        }
        for record in body.records
    ]
    session = db()
    accepted = insert_inference_logs(session, organization_id, rows)
    session.commit()
    return InferenceLogsAccepted(accepted=accepted)


@bp.get("")
@endpoint(query=InferenceLogQuery, response=Page[InferenceLogOut], problems=(401, 404, 422))
def list_inference_logs(organization_id: str, query: InferenceLogQuery):
    """List inference logs, filtered by model, version, project and time window `[from, to)`."""
    statement = list_inference_logs_query(
        organization_id, query.model, query.model_version, query.project_id, query.from_, query.to
    )
    records, cursor = paginate(db(), statement, InferenceLog.id, query)
    return Page[InferenceLogOut](items=[inference_log_out(r) for r in records], next_cursor=cursor)
