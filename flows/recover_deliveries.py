"""``recover-deliveries``: send a webhook's undelivered events again after its receiver's outage.

``POST .../webhooks/{webhook_id}/recover`` creates a run of this flow (visible in the Prefect UI with
its logs and outcome) and starts it in the API process, answering 202 at once; operators can run it
too with ``{"webhook_id", "since", "until", "statuses"}``. The sending is ``tasks.webhooks.fanout.recover_deliveries``:
one delivery at a time, in order of creation, each attempt recorded in the webhook's history.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from prefect import flow, get_run_logger

from store import deliveries
from tasks.webhooks import fanout


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"recover-{flow_run.parameters['webhook_id']}"


# Async: the API runs it in process, where an async flow costs ~0.1 s of Prefect overhead.
@flow(name="recover-deliveries", flow_run_name=_run_name)
async def recover_deliveries(
    webhook_id: str,
    since: datetime,
    until: datetime | None = None,
    statuses: list[Literal["retrying", "failed", "silenced"]] | None = None,
) -> dict[str, Any]:
    """Send again, in order, the webhook's deliveries created in ``[since, until)`` that did not succeed.

    Args:
        webhook_id: the webhook (``wh_...``); a disabled one is not sent to.
        since: the start of the window (inclusive), e.g. when the receiver went down.
        until: the end of the window (exclusive); default now.
        statuses: which deliveries of the window: default ``["retrying", "failed"]``; ``silenced`` ones
            (held back by a silence) are sent only when named.

    Returns:
        Counts: deliveries selected, sent, succeeded, failed, skipped, and why it stopped early.
    """
    summary = await fanout.recover_deliveries(
        webhook_id, since, until, statuses=statuses or list(deliveries.RECOVERABLE_STATUSES)
    )
    get_run_logger().info(
        "%d deliveries: %d sent, %d succeeded, %d failed, %d skipped%s",
        summary.deliveries,
        summary.sent,
        summary.succeeded,
        summary.failed,
        summary.skipped,
        f"; stopped: {summary.stopped}" if summary.stopped else "",
    )
    return asdict(summary)
