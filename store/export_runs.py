"""Export runs, their per-stream counters, rejected records and the stream watermarks.

The one invariant: a watermark moves only in the transaction that also adds the page's counters
(and rejected records) to its run, so a crash between "the sink acknowledged" and "we recorded it"
re-ships that page (idempotent by record id) instead of losing or double-counting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import ExportRun, ExportRunStream, ExportWatermark, RejectedRecord, utcnow

RUN_STATUSES = ("scheduled", "running", "completed", "completed_with_errors", "failed")
FINISHED_STATUSES = ("completed", "completed_with_errors", "failed")


@dataclass(frozen=True)
class Rejection:
    """One record the sink refused for good, and why."""

    record_id: str
    reason: str
    status: int | None = None


@dataclass(frozen=True)
class PageOutcome:
    """What one acknowledged page adds to its run."""

    shipped: int
    rejected: tuple[Rejection, ...] = ()
    retried: int = 0


def create_run(
    session: Session,
    export_id: str,
    organization_id: str,
    backfill: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> ExportRun:
    """Add a ``scheduled`` run (a backfill when ``backfill`` is given) to the session."""
    run = ExportRun(
        id=new_id("xrun"),
        export_id=export_id,
        organization_id=organization_id,
        mode="backfill" if backfill is not None else "incremental",
        backfill=backfill,
        status="scheduled",
        flow_run_id=flow_run_id,
    )
    session.add(run)
    return run


def get_run(session: Session, export_id: str, run_id: str) -> ExportRun | None:
    """The run ``run_id`` of export ``export_id``, or None (a run of another export is None too)."""
    run = session.get(ExportRun, run_id)
    return run if run is not None and run.export_id == export_id else None


def runs_of_export(export_id: str) -> Select[tuple[ExportRun]]:
    """All runs of an export, oldest first (ids sort by creation time)."""
    return select(ExportRun).where(ExportRun.export_id == export_id).order_by(ExportRun.id)


def rejected_of_run(run_id: str) -> Select[tuple[RejectedRecord]]:
    """The rejected records of a run, in the order they were rejected."""
    return select(RejectedRecord).where(RejectedRecord.run_id == run_id).order_by(RejectedRecord.id)


def start_run(session: Session, run_id: str, flow_run_id: str | None) -> ExportRun:
    """Mark a run ``running`` under ``flow_run_id``; zero counters of earlier attempts stay."""
    run = session.get_one(ExportRun, run_id)
    run.status = "running"
    run.flow_run_id = flow_run_id or run.flow_run_id
    run.started_at = run.started_at or utcnow()
    # A queued run an earlier-starting one took for abandoned is alive after all.
    run.error = run.finished_at = None
    return run


def abandon_unfinished_runs(session: Session, export_id: str, except_run_id: str) -> int:
    """Mark older runs of the export still ``running``/``scheduled`` as failed (their process died).

    Exports of one export run one at a time (the deployment's concurrency limit is 1), so when a new
    run starts, an older unfinished one can only be a crashed or cancelled one.
    """
    result = session.execute(
        update(ExportRun)
        .where(
            ExportRun.export_id == export_id,
            ExportRun.id < except_run_id,
            ExportRun.status.in_(("scheduled", "running")),
        )
        .values(status="failed", finished_at=utcnow(), error="abandoned: its flow run stopped before finishing")
    )
    return result.rowcount or 0


def finish_run(session: Session, run_id: str, error: str | None = None) -> ExportRun:
    """Close a run: ``failed`` with ``error``, else completed (``_with_errors`` if any rejection)."""
    run = session.get_one(ExportRun, run_id)
    rejected = sum(counter.rejected for counter in stream_counters(session, run_id).values())
    if error is not None:
        run.status, run.error = "failed", error[:4000]
    else:
        run.status = "completed_with_errors" if rejected else "completed"
    run.finished_at = utcnow()
    return run


def stream_counters(session: Session, run_id: str) -> dict[str, ExportRunStream]:
    """The run's counters keyed by stream."""
    rows = session.scalars(select(ExportRunStream).where(ExportRunStream.run_id == run_id))
    return {row.stream: row for row in rows}


def read_watermark(session: Session, export_id: str, stream: str) -> str | None:
    """The position of the last acknowledged record of ``stream``, None before the first page."""
    mark = session.get(ExportWatermark, (export_id, stream))
    return mark.position if mark is not None else None


def record_page(
    session: Session,
    run_id: str,
    export_id: str,
    stream: str,
    outcome: PageOutcome,
    position: str | None,
) -> None:
    """Add a page's outcome to the run and, when ``position`` is given, move the watermark to it.

    Callers pass ``position=None`` for a backfill, which must leave the watermark where it is.
    """
    counters = session.get(ExportRunStream, (run_id, stream))
    if counters is None:
        counters = ExportRunStream(run_id=run_id, stream=stream, shipped=0, rejected=0, retried=0)
        session.add(counters)
    counters.shipped += outcome.shipped
    counters.rejected += len(outcome.rejected)
    counters.retried += outcome.retried
    session.add_all(
        RejectedRecord(
            run_id=run_id, stream=stream, record_id=r.record_id, status=r.status, reason=r.reason[:2000]
        )
        for r in outcome.rejected
    )
    if position is None:
        return
    mark = session.get(ExportWatermark, (export_id, stream))
    if mark is None:
        session.add(ExportWatermark(export_id=export_id, stream=stream, position=position))
    else:
        mark.position = position
