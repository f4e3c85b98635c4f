"""The ``export`` flow: ship an export's streams to its sink, page by page, past each watermark.

Deployments: ``export/export`` (from ``prefect.yaml``) is the template; every export gets its own
deployment ``export/<export id>`` with the export's schedule (see ``flows/export_deployments.py``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.exports import (
    begin_run,
    close_run,
    publish_summary,
    read_page,
    record_page_outcome,
    settled_position,
    ship_page,
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
    plan = begin_run(export_id, run_id, backfill)
    try:
        for stream in plan.streams:
            # Records past `through` could still be preceded by a record not yet committed: the
            # next run takes them.
            through = settled_position(plan, stream)
            if through is None and not plan.is_backfill:
                continue  # nothing settled in this stream yet
            upcoming = read_page.submit(plan, stream, starting_position(plan, stream), through)
            while page := upcoming.result():
                # Read ahead while this page ships; only record_page_outcome moves the watermark.
                upcoming = read_page.submit(plan, stream, page.last_position, through)
                result = ship_page(plan, page)
                record_page_outcome(plan, page, result)
    except Exception as error:
        publish_summary(plan, close_run(plan, error=f"{type(error).__name__}: {error}"))
        raise
    summary = close_run(plan)
    publish_summary(plan, summary)
    return summary
