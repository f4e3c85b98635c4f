"""``retry-due-deliveries``: the scheduled sweep that keeps webhook deliveries durable.

It sends every delivery whose retry is due (the schedule lives in the database, so a restart
loses nothing), takes over deliveries whose sender died mid-attempt (their lease expired),
fans out outbox events whose dispatch never happened, and deletes settled deliveries older than
the history retention.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.fan_out import fan_out_events
from tasks.webhooks import fanout, history


@task(name="find-stranded-events")
def find_stranded_events() -> list[str]:
    """Outbox events still undispatched well after they were written (no dispatcher was running)."""
    return fanout.stranded_event_ids()


@task(name="send-due-retries", retries=1, retry_delay_seconds=5)
async def send_due_retries() -> dict[str, int]:
    """Send the deliveries whose next attempt is due."""
    summary = await fanout.retry_due_deliveries()
    return {"deliveries": summary.deliveries, "succeeded": summary.succeeded, "failed": summary.failed}


@task(name="prune-delivery-history")
def prune_delivery_history() -> int:
    """Delete settled deliveries older than the retention window (``MODELPULSE_WEBHOOK_HISTORY_DAYS``)."""
    return history.prune_delivery_history()


@flow(name="retry-due-deliveries")
async def retry_due_deliveries() -> dict[str, int]:
    """Dispatch stranded events, send due retries, then prune old delivery history."""
    stranded = find_stranded_events()
    if stranded:
        await fan_out_events(stranded)
    retried = await send_due_retries()
    pruned = prune_delivery_history()
    get_run_logger().info(
        "dispatched %d stranded events; retries: %s; pruned %d old deliveries", len(stranded), retried, pruned
    )
    return {"stranded_events": len(stranded), **retried, "pruned_deliveries": pruned}
