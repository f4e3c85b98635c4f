"""``/organizations/{organization_id}/exports/{export_id}/...``: trigger, run history, rejected records, test."""

from __future__ import annotations

from flask import Blueprint, current_app, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import endpoint
from api.errors import Conflict, NotFound, Unprocessable
from api.pagination import paginate
from api.schemas.common import Page, PageQuery
from api.schemas.export_runs import ConnectionTestOut, RejectedOut, RunOut, StreamCounters, TriggerIn, TriggerOut
from api.services.exports import check_export_connection, exports, start_export
from store.export_runs import get_run, rejected_of_run, runs_of_export, stream_counters
from store.models import Export, ExportRun, RejectedRecord

bp = Blueprint("export_runs", __name__, url_prefix="/organizations/<organization_id>/exports/<export_id>")
require_organization_key(bp, owned={"export_id": Export})


def run_out(run: ExportRun) -> RunOut:
    counters = stream_counters(db(), run.id)
    return RunOut(
        id=run.id,
        export_id=run.export_id,
        flow_run_id=run.flow_run_id,
        mode=run.mode,
        status=run.status,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        streams={
            stream: StreamCounters(shipped=c.shipped, rejected=c.rejected, retried=c.retried)
            for stream, c in counters.items()
        },
    )


def _run_of(organization_id: str, export_id: str, run_id: str) -> ExportRun:
    export = exports.get(db(), organization_id, export_id)
    run = get_run(db(), export.id, run_id)
    if run is None:
        raise NotFound(f"No run {run_id!r} of export {export_id!r}.")
    return run


@bp.post("/trigger")
@endpoint(body=TriggerIn, body_required=False, response=TriggerOut, status=202, problems=(401, 404, 409, 422, 502))
def trigger_export(organization_id: str, export_id: str, body: TriggerIn):
    """Trigger an export.

    Starts a flow run of the export's deployment and answers at once. No body ships what is past
    the watermarks; `{"streams", "from", "to"}` makes it a backfill that leaves the watermarks alone.
    """
    export = exports.get(db(), organization_id, export_id)
    if not export.enabled:
        raise Conflict(f"Export {export_id!r} is disabled; enable it before triggering it.")
    unknown = [s for s in body.streams or () if s not in export.streams]
    if unknown:
        raise Unprocessable.field("streams", f"not exported by this export: {', '.join(unknown)}")
    backfill = body.backfill()
    run = start_export(db(), export, organization_id, backfill)
    status_url = url_for(
        ".get_export_run", organization_id=organization_id, export_id=export.id, run_id=run.id
    )
    return TriggerOut(run_id=run.id, flow_run_id=run.flow_run_id, status=run.status, status_url=status_url)


@bp.get("/runs")
@endpoint(query=PageQuery, response=Page[RunOut], problems=(401, 404, 422))
def list_export_runs(organization_id: str, export_id: str, query: PageQuery):
    """List an export's runs, newest first, with counters per stream."""
    export = exports.get(db(), organization_id, export_id)
    runs, cursor = paginate(db(), runs_of_export(export.id).order_by(None), ExportRun.id, query, descending=True)
    return Page[RunOut](items=[run_out(run) for run in runs], next_cursor=cursor)


@bp.get("/runs/<run_id>")
@endpoint(response=RunOut, problems=(401, 404))
def get_export_run(organization_id: str, export_id: str, run_id: str):
    """Get one run: status, timing, error and shipped/rejected/retried per stream."""
    return run_out(_run_of(organization_id, export_id, run_id))


@bp.get("/runs/<run_id>/rejected")
@endpoint(query=PageQuery, response=Page[RejectedOut], problems=(401, 404, 422))
def list_rejected_records(organization_id: str, export_id: str, run_id: str, query: PageQuery):
    """List the records the sink refused in a run, with the sink's reason for each."""
    run = _run_of(organization_id, export_id, run_id)
    rows, cursor = paginate(db(), rejected_of_run(run.id).order_by(None), RejectedRecord.id, query)
    return Page[RejectedOut](
        items=[
            RejectedOut(
                id=r.id, stream=r.stream, record_id=r.record_id, status=r.status, reason=r.reason,
                rejected_at=r.rejected_at,
            )
            for r in rows
        ],
        next_cursor=cursor,
    )


@bp.post("/test")
@endpoint(response=ConnectionTestOut, problems=(401, 404, 502))
def test_export_connection(organization_id: str, export_id: str):
    """Check that the sink is reachable and accepts the stored credentials; says what failed.

    A sink that does not answer in time is a failed ``reachable`` check, within the deadline.
    """
    export = exports.get(db(), organization_id, export_id)
    checks = check_export_connection(export, current_app.config.get("SINK_CHECK_DEADLINE_SECONDS"))
    return ConnectionTestOut(
        ok=all(check.ok for check in checks),
        checks=[{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
    )
