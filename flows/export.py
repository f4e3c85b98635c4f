"""The ``export`` flow: ship an export's streams to its sink, page by page, past each watermark.

Deployments: ``export/export`` (from ``prefect.yaml``) is the template; every export gets its own
deployment ``export/<export id>`` with the export's schedule (see ``flows/export_deployments.py``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture, wait

from tasks.exports import (
    ExportPlan,
    PageSpan,
    begin_export_run,
    finish_export_run,
    page_shipping,
    plan_pages,
    publish_export_summary,
    record_page,
    settled_position,
    starting_position,
)


@flow(name="export", flow_run_name="export-{export_id}")
def export(export_id: str, run_id: str | None = None, backfill: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ship every stream of export ``export_id`` past its watermark; return the run summary.

    Args:
        export_id: The export to run (its credentials are loaded by the tasks, never passed here).
        run_id: The run record the trigger endpoint created; a scheduled run creates its own.
        backfill: ``{"streams": [...], "from": ts, "to": ts}`` to re-ship a range without moving
            watermarks.
    """
    plan = begin_export_run(export_id, run_id, backfill)
    try:
        for stream in plan.streams:
            # Records past `through` could still be preceded by a record not yet committed: the
            # next run takes them.
            through = settled_position(plan, stream)
            if through is None and not plan.is_backfill:
                continue  # nothing settled in this stream yet
            ship_stream(plan, stream, starting_position(plan, stream), through)
    except Exception as error:
        publish_export_summary(plan, finish_export_run(plan, error=f"{type(error).__name__}: {error}"))
        raise
    summary = finish_export_run(plan)
    publish_export_summary(plan, summary)
    return summary


def ship_stream(plan: ExportPlan, stream: str, after: str | None, through: str | None) -> None:
    """Ship ``stream`` past ``after`` as a pipeline: up to ``plan.concurrency`` pages are read,
    encoded and sent at once (one page's read and encoding overlap another's request), and their
    outcomes are recorded in page order, so a watermark only ever passes acknowledged pages.

    If a page fails for good, the pages after it may have reached the sink too; they stay past the
    watermark and the next run re-sends them (every sink's writes are idempotent or carry the id
    that makes duplicates removable).
    """
    in_flight: deque[tuple[PageSpan, PrefectFuture[Any]]] = deque()
    ship_page = page_shipping()
    try:
        while spans := plan_pages(plan, stream, after, through):
            for span in spans:
                in_flight.append((span, ship_page.submit(plan, span)))
                if len(in_flight) >= plan.concurrency:
                    shipped, shipping = in_flight.popleft()
                    record_page(plan, shipped, shipping.result())
            after = spans[-1].last
        while in_flight:
            shipped, shipping = in_flight.popleft()
            record_page(plan, shipped, shipping.result())
    finally:
        # A failed page leaves later pages running: let them end before the run is closed.
        wait([future for _, future in in_flight])
