"""The export's steps: open a run, plan the pages past the watermark, read and ship each, record it
(counters, rejections and the watermark in one transaction), close the run, summarize.

Shipping a page is the Prefect task (``ship-page``: retries with backoff, a deadline, visible per page in
the UI); the bookkeeping around it is plain calls in the flow run with their own retries on a dropped
database connection (``tasks.retries.database_retries``). A task run for each cost more than the
step (its states, events and persisted result): a small export made nine task runs, now one, and costs
~0.13 CPU-s less over the whole stack (bench/RESULTS.md, "Flow runs forked from a warm server").

Tasks take ids and small plans, never secrets: the sink's block is loaded here, by export id.
Pages cross task boundaries as positions (`PageSpan`); the task that ships a page reads its records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run
from prefect.tasks import exponential_backoff
from prefect.utilities.timeout import timeout

from blocks.connections import load_connection
from store import export_runs
from store.db import session_scope
from store.export_runs import (
    PageOutcome,
    abandon_unfinished_runs,
    create_run,
    finish_run,
    read_watermark,
    start_run,
    stream_counters,
)
from store.export_streams import STREAMS, PageQuery, page_ends, settled_through
from store.export_streams import read_page as read_stream_page
from store.metrics import EXPORT_RECORDS, EXPORT_RUNS
from store.models import Export
from store.settings import get_settings
from tasks.retries import database_retries, retry_unless
from tasks.sinks import (
    CredentialsRejected,
    ExportTarget,
    ShipResult,
    SinkMisconfigured,
    SinkUnavailable,
    sink_module,
)
from tasks.sinks.base import confirmation_seconds, page_deadline

DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 50_000
PAGES_PLANNED = 16  # page ends found per query (an index range of 16 pages' ids)
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 8


@dataclass(frozen=True)
class ExportPlan:
    """What one run does. Holds no secret: the sink's credentials stay in its block."""

    run_id: str
    target: ExportTarget
    type: str
    streams: tuple[str, ...]
    page_size: int
    concurrency: int = 1  # pages in flight to the sink at once (``config.concurrency``)
    # A backfill re-ships a time range and never moves a watermark.
    is_backfill: bool = False
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class PageSpan:
    """One page of a stream: the records past ``after`` up to and including ``last``.

    Only positions cross task boundaries, never records: the task that ships a page reads it, so
    a page's records live only while it ships (Prefect keeps every task's result until the flow
    run ends, and 5,000 records a page over a million-record run would add up).
    """

    stream: str
    after: str | None
    last: str

    def __repr__(self) -> str:
        return f"PageSpan({self.stream!r}, {self.after} < id <= {self.last})"


class ExportNotFound(LookupError):
    """The export was deleted (or never existed)."""


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@database_retries()
def begin_export_run(export_id: str, run_id: str | None, backfill: dict[str, Any] | None) -> ExportPlan:
    """Open (or adopt the triggered) run record, mark it running, and plan the streams.

    A backfill (``{"streams", "from", "to"}``) ships only the given streams and time range and never
    moves a watermark.
    """
    with session_scope() as session:
        export = session.get(Export, export_id)
        if export is None:
            raise ExportNotFound(f"export {export_id} does not exist")
        if run_id is None:
            run_id = create_run(session, export.id, export.organization_id, backfill).id
            session.flush()
        start_run(session, run_id, str(flow_run.id) if flow_run.id else None)
        abandoned = abandon_unfinished_runs(session, export.id, run_id)
        streams = tuple(s for s in export.streams if s in STREAMS)
        if backfill and backfill.get("streams"):
            streams = tuple(s for s in backfill["streams"] if s in streams)
        page_size = min(int(export.config.get("page_size") or DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        concurrency = min(max(int(export.config.get("concurrency") or DEFAULT_CONCURRENCY), 1), MAX_CONCURRENCY)
        plan = ExportPlan(
            run_id=run_id,
            target=ExportTarget.of(export),
            type=export.type,
            streams=streams,
            page_size=page_size,
            concurrency=concurrency,
            since=_parse_time((backfill or {}).get("from")),
            until=_parse_time((backfill or {}).get("to")),
            is_backfill=backfill is not None,
        )
    if abandoned:
        get_run_logger().warning("marked %d unfinished earlier run(s) of this export as failed", abandoned)
    return plan


@database_retries()
def starting_position(plan: ExportPlan, stream: str) -> str | None:
    """Where the stream resumes: its watermark, or the beginning for a backfill."""
    if plan.is_backfill:
        return None
    with session_scope() as session:
        return read_watermark(session, plan.target.export_id, stream)


@database_retries()
def settled_position(plan: ExportPlan, stream: str) -> str | None:
    """How far this run may read ``stream``: no record can still appear before it (see
    ``store.export_streams.settled_through``). A backfill moves no watermark and reads it all."""
    if plan.is_backfill:
        return None
    with session_scope() as session:
        return settled_through(session, stream)


@database_retries()
def plan_pages(plan: ExportPlan, stream: str, after: str | None, through: str | None) -> list[PageSpan]:
    """The next pages of ``stream`` past ``after`` and up to ``through`` (within the backfill
    range): up to ``PAGES_PLANNED`` at a time, from one query over the id index."""
    with session_scope() as session:
        ends = page_ends(session, _page_query(plan, stream, after, through), plan.page_size, PAGES_PLANNED)
    return [PageSpan(stream, start, end) for start, end in zip([after, *ends], ends, strict=False)]


def _page_query(plan: ExportPlan, stream: str, after: str | None, through: str | None) -> PageQuery:
    return PageQuery(
        stream=stream,
        organization_id=plan.target.organization_id,
        project_id=plan.target.project_id,
        after=after,
        through=through,
        since=plan.since,
        until=plan.until,
    )


def _read(plan: ExportPlan, span: PageSpan) -> list[dict[str, Any]]:
    with session_scope() as session:
        return read_stream_page(session, _page_query(plan, span.stream, span.after, span.last), plan.page_size)


@lru_cache(maxsize=32)
def _connection(export_id: str, export_type: str, flow_run_id: str | None) -> Any:
    # One block load per flow run (not per page); a new run sees re-saved credentials.
    return load_connection("export", export_id, export_type)


class _PageDeadlinePassed(TimeoutError):
    """A ship-page attempt outlived ``MODELPULSE_SINK_PAGE_DEADLINE_SECONDS``."""


@task(
    name="ship-page",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless(CredentialsRejected, SinkMisconfigured),  # the sink refused us
    cache_policy=NO_CACHE,
    persist_result=False,
)
def ship_page(plan: ExportPlan, span: PageSpan) -> ShipResult:
    """Read a page and send it to the export's sink; a retried attempt counts the whole page as
    re-sent.

    Each request has the sink's connect/read timeout; the attempt as a whole has a deadline, since
    a sink that trickles its answers passes every read timeout.
    """
    records = _read(plan, span)
    connection = _connection(plan.target.export_id, plan.type, str(flow_run.id) if flow_run.id else None)
    sink = sink_module(plan.type)
    deadline = page_deadline() + confirmation_seconds(sink, plan.target)
    try:
        # Prefect's scope interrupts the call at the deadline, even inside a blocking socket read.
        with timeout(deadline, timeout_exc_type=_PageDeadlinePassed):
            result = sink.ship_page(connection, plan.target, span.stream, records)
    except _PageDeadlinePassed:
        raise SinkUnavailable(
            f"the {plan.type} sink took more than {deadline:g} s over one page "
            f"(MODELPULSE_SINK_PAGE_DEADLINE_SECONDS); it answers too slowly or not completely"
        ) from None
    if (task_run.run_count or 1) > 1:
        result.retried += len(records)
    return result


def page_shipping() -> Any:
    """``ship_page`` with the retry backoff of ``MODELPULSE_SINK_RETRY_BACKOFF_SECONDS``, read per run."""
    backoff = get_settings().sink_retry_backoff_seconds
    return ship_page.with_options(retry_delay_seconds=exponential_backoff(backoff_factor=backoff))


@database_retries()
def record_page(plan: ExportPlan, span: PageSpan, result: ShipResult) -> str:
    """Add the page's counters and rejections to the run and move the watermark, in one transaction.

    Returns the new watermark position (the page's last record).
    """
    outcome = PageOutcome(shipped=result.shipped, rejected=tuple(result.rejected), retried=result.retried)
    position = span.last
    with session_scope() as session:
        export_runs.record_page(
            session,
            plan.run_id,
            plan.target.export_id,
            span.stream,
            outcome,
            None if plan.is_backfill else position,
        )
    # Once committed: a page whose transaction failed is shipped again by the task's retry.
    labels = (plan.target.organization_id, plan.target.export_id, span.stream)
    EXPORT_RECORDS.labels(*labels, "shipped").inc(result.shipped)
    if result.rejected:
        EXPORT_RECORDS.labels(*labels, "rejected").inc(len(result.rejected))
    get_run_logger().info(
        "%s: %d shipped, %d rejected, %d retried (through %s)",
        span.stream,
        result.shipped,
        len(result.rejected),
        result.retried,
        position,
    )
    return position


@database_retries()
def finish_export_run(plan: ExportPlan, error: str | None = None) -> dict[str, Any]:
    """Close the run record and return its summary (status, error, counters per stream)."""
    with session_scope() as session:
        run = finish_run(session, plan.run_id, error)
        counters = stream_counters(session, plan.run_id)
        summary = {
            "run_id": run.id,
            "status": run.status,
            "error": run.error,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "streams": {
                stream: {
                    "shipped": counters[stream].shipped if stream in counters else 0,
                    "rejected": counters[stream].rejected if stream in counters else 0,
                    "retried": counters[stream].retried if stream in counters else 0,
                }
                for stream in plan.streams
            },
        }
    EXPORT_RUNS.labels(summary["status"]).inc()
    return summary


def publish_export_summary(plan: ExportPlan, summary: dict[str, Any]) -> None:
    """A markdown artifact on the flow run: status, counters per stream, the error if any."""
    lines = [
        f"# Export {plan.target.export_id} ({plan.type})",
        "",
        f"Run `{summary['run_id']}`: **{summary['status']}**"
        + (" (backfill, watermarks untouched)" if plan.is_backfill else ""),
        "",
        "| stream | shipped | rejected | retried |",
        "|---|---:|---:|---:|",
    ]
    for stream, counts in summary["streams"].items():
        lines.append(f"| {stream} | {counts['shipped']} | {counts['rejected']} | {counts['retried']} |")
    if summary["error"]:
        lines += ["", f"Error: {summary['error']}"]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=f"export-{plan.target.export_id.replace('_', '-').lower()}",
        description=f"Export run {summary['run_id']}",
    )
