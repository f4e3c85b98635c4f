"""Nothing is lost across a restart: the dispatcher sends what was written while it was down, the
sweep sends parked retries, and the sweep alone dispatches events when no dispatcher runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from flows.retry_deliveries import retry_due_deliveries
from store.db import session_scope
from store.ids import new_id
from store.models import Delivery, Event, utcnow
from tests.support.servers import free_port
from tests.webhooks.receivers import Receiver, wait_for


def test_parked_retries_and_events_written_while_down_are_delivered_after_a_restart(
    fan_out_worker, organization, create_webhook, publish, history
):
    port = free_port()  # nothing listens there yet: the receiver is down
    webhook = create_webhook(f"http://127.0.0.1:{port}/hook")
    first = publish()
    (parked,) = wait_for(
        lambda: [d for d in history(webhook["id"]) if d["status"] == "retrying" and d["attempt_count"] == 2],
        what="the initial attempt and the short retry to fail",
    )
    assert all(attempt["error"] == f"connection refused by 127.0.0.1:{port}" for attempt in parked["attempts"])

    fan_out_worker.stop()  # the dispatcher dies with a retry pending in the database
    # ... and producers commit events meanwhile: one long ago, one just now.
    stranded, written_while_down = new_id("evt"), new_id("evt")
    with session_scope() as session:
        for event_id, age in ((stranded, timedelta(minutes=5)), (written_while_down, timedelta(0))):
            session.add(
                Event(
                    id=event_id,
                    organization_id=organization.id,
                    type="drift.detected",
                    data={"model": "churn"},
                    timestamp=utcnow() - age,
                )
            )
    # Time passes: the parked retry falls due.
    with session_scope() as session:
        session.execute(update(Delivery).where(Delivery.id == parked["id"]).values(next_attempt_at=utcnow()))

    with Receiver(port=port) as receiver:
        # With no dispatcher running, the scheduled sweep sends the due retry and the stranded event
        # (but leaves the fresh one to a dispatcher).
        summary = asyncio.run(retry_due_deliveries())
        assert summary["stranded_events"] >= 1
        assert summary["deliveries"] >= 1
        delivered = {r.headers["webhook-id"] for r in receiver.received}
        assert {first, stranded} <= delivered
        assert written_while_down not in delivered

        fan_out_worker.start()  # the restarted dispatcher finds the event written while it was down
        wait_for(lambda: written_while_down in {r.headers["webhook-id"] for r in receiver.received})
        after_restart = publish()
        wait_for(lambda: after_restart in {r.headers["webhook-id"] for r in receiver.received})
        for received in receiver.received:
            received.verify(webhook["signing_secret"])

    retried = next(d for d in history(webhook["id"]) if d["id"] == parked["id"])
    assert retried["status"] == "succeeded"
    assert [a["trigger"] for a in retried["attempts"]] == ["initial", "retry", "retry"]
    statuses = {d["event_id"]: d["status"] for d in history(webhook["id"])}
    assert statuses[stranded] == statuses[written_while_down] == "succeeded"
