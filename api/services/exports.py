"""Exports for the routes: the stored record set, starting a run, testing the sink's connection."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from api.errors import ServiceUnavailable, UpstreamError
from api.schemas.exports import ExportIn
from api.services.connected_records import PREFECT_ERRORS, ConnectedRecords
from api.services.deadlines import DeadlinePassed, call_with_deadline
from blocks.connections import load_connection
from flows.export_deployments import TemplateMissing, start_export_run
from store.export_runs import create_run, finish_run
from store.models import Export, ExportRun
from tasks.sinks import CHECK_DEADLINE_SECONDS, Check, ExportTarget, sink_module

log = logging.getLogger(__name__)

exports = ConnectedRecords("export", Export, "exp", ExportIn, extra_fields=("streams", "schedule", "enabled"))


def start_export(session: Session, export: Export, organization_id: str, backfill: dict | None) -> ExportRun:
    """Record a run and start a flow run of the export's deployment for it (committed either way).

    A run whose flow run could not be started is finished with the reason, then 502 (no deployment
    template) or 503 (Prefect unreachable).
    """
    run = create_run(session, export.id, organization_id, backfill)
    session.commit()
    try:
        flow_run_id = start_export_run(export, run.id, backfill)
    except (TemplateMissing, *PREFECT_ERRORS) as error:
        log.error("could not start export run %s: %s", run.id, type(error).__name__)
        finish_run(session, run.id, error=f"could not start a flow run: {error}")
        session.commit()
        if isinstance(error, TemplateMissing):
            raise UpstreamError(f"The export's flow run could not be started: {error}") from None
        raise ServiceUnavailable(f"The export's flow run could not be started: {type(error).__name__}") from None
    run.flow_run_id = str(flow_run_id)
    session.commit()
    return run


def check_export_connection(export: Export, deadline: float | None = None) -> list[Check]:
    """The sink's own checks with the stored credentials; one that does not answer in time is a failed
    ``reachable`` check, within ``deadline`` seconds (``CHECK_DEADLINE_SECONDS`` by default)."""
    deadline = CHECK_DEADLINE_SECONDS if deadline is None else deadline
    try:
        connection = load_connection("export", export.id, export.type)
    except ValueError as error:
        raise UpstreamError(f"The export's credentials could not be loaded: {error}") from None
    except PREFECT_ERRORS as error:
        raise ServiceUnavailable(f"The export's credentials could not be loaded: {type(error).__name__}") from None
    try:
        target = ExportTarget.of(export)
        return call_with_deadline(lambda: sink_module(export.type).check_connection(connection, target), deadline)
    except DeadlinePassed:
        return [Check("reachable", False, f"no complete answer within {deadline:g} s")]
