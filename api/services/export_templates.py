"""Prepare an export's sink when the export is created or updated (Elasticsearch: install its index
templates and ILM policies), through the sink's own ``prepare_target``.

Called by the export routes after a create or update has committed, like the schedule. The sink may
be down or refuse (missing privileges) at that moment: the create or update still succeeds, says so
in ``status_detail``, and every run installs what it needs before its first page anyway (``/test``
reports and retries it on demand). A later success clears the note.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy.orm import Session

from api.services.connected_records import PREFECT_ERRORS
from api.services.deadlines import DeadlinePassed, call_with_deadline
from blocks.connections import load_connection
from store.models import Export
from tasks.sinks import CHECK_DEADLINE_SECONDS, Check, ExportTarget, sink_module

log = logging.getLogger(__name__)

NOT_PREPARED = "templates not installed: "


def prepare_sink(session: Session, export: Export) -> None:
    """Run the sink's ``prepare_target`` for the export, if it has one; note a failure on the record."""
    prepare = getattr(sink_module(export.type), "prepare_target", None)
    if prepare is None:
        return
    deadline = current_app.config.get("SINK_CHECK_DEADLINE_SECONDS", CHECK_DEADLINE_SECONDS)
    target = ExportTarget.of(export)
    try:
        connection = load_connection("export", export.id, export.type)
        checks: list[Check] = call_with_deadline(lambda: prepare(connection, target), deadline)
    except (ValueError, DeadlinePassed, *PREFECT_ERRORS) as error:
        checks = [Check("templates", False, f"{type(error).__name__}: {error}")]
    failed = "; ".join(check.detail for check in checks if not check.ok)
    if failed:
        log.warning("export %s: sink not prepared: %s", export.id, failed)
    _note(export, f"{NOT_PREPARED}{failed}" if failed else None)
    session.commit()


def _note(export: Export, note: str | None) -> None:
    """Replace this module's line of ``status_detail``, keeping other lines (the schedule's)."""
    lines = [line for line in (export.status_detail or "").split("\n") if line and not line.startswith(NOT_PREPARED)]
    if note:
        lines.append(note)
    export.status_detail = "\n".join(lines)[:2000] or None
