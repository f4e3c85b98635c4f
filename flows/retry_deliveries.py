"""``retry-due-deliveries``: the scheduled sweep that keeps webhook deliveries durable.

It sends every delivery whose retry is due (the schedule lives in the database, so a restart
loses nothing), takes over deliveries whose sender died mid-attempt (their lease expired),
fans out outbox events whose dispatch never happened, emits into Prefect's event stream the events no
dispatcher emitted (``tasks/prefect_events.py``), and deletes settled deliveries older than
the history retention.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.events.clients import get_events_client

from flows.fan_out import fan_out_events
from store.models import utcnow
from tasks import prefect_events
from tasks.webhooks import fanout, history
from tasks.webhooks.settings import get_webhook_settings


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


@task(name="publish-stranded-events", retries=1, retry_delay_seconds=5)
async def publish_stranded_events() -> int:
    """Emit into Prefect's event stream the events no dispatcher emitted well after they were written."""
    written_before = get_webhook_settings().stranded_before(utcnow())
    async with get_events_client(checkpoint_every=1) as client:
        return await prefect_events.publish_events(client, written_before=written_before)


@flow(name="retry-due-deliveries")
async def retry_due_deliveries() -> dict[str, int]:
    """Dispatch stranded events, emit unpublished ones to Prefect, send due retries, then prune old delivery history."""
    stranded = find_stranded_events()
    if stranded:
        await fan_out_events(stranded)
    # Its failure (Prefect's events websocket down) must not hold up the deliveries' retries.
    try:
        emitted = await publish_stranded_events()
    except Exception as error:  # noqa: BLE001 - the next sweep emits them
        get_run_logger().warning("could not emit stranded events to Prefect: %s: %s", type(error).__name__, error)
        emitted = 0
    retried = await send_due_retries()
    pruned = prune_delivery_history()
    get_run_logger().info(
        "dispatched %d stranded events; emitted %d to Prefect; retries: %s; pruned %d old deliveries",
        len(stranded), emitted, retried, pruned,
    )
    return {"stranded_events": len(stranded), "published_events": emitted, **retried, "pruned_deliveries": pruned}
