"""Nothing is lost across a restart: parked retries and never-dispatched events are sent by the sweep."""

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


def test_parked_retries_and_stranded_events_are_delivered_after_a_restart(
    fan_out_worker, organization, create_webhook, publish, history
):
    port = free_port()  # nothing listens there yet: the receiver is down
    webhook = create_webhook(f"http://127.0.0.1:{port}/hook")
    first = publish()
    (parked,) = wait_for(
        lambda: [d for d in history(webhook["id"]) if d["status"] == "retrying" and d["attempt_count"] == 2],
        what="the initial attempt and the short retry to fail",
    )
    assert all("ConnectError" in attempt["error"] for attempt in parked["attempts"])

    fan_out_worker.stop()  # the dispatcher dies with a retry pending in the database
    # ... and a producer committed an event, then died before handing it over.
    stranded = new_id("evt")
    with session_scope() as session:
        session.add(
            Event(
                id=stranded,
                organization_id=organization.id,
                type="drift.detected",
                data={"model": "churn"},
                timestamp=utcnow() - timedelta(minutes=5),
            )
        )
    # Time passes: the parked retry falls due.
    with session_scope() as session:
        session.execute(update(Delivery).where(Delivery.id == parked["id"]).values(next_attempt_at=utcnow()))

    with Receiver(port=port) as receiver:
        fan_out_worker.start()
        summary = asyncio.run(retry_due_deliveries())  # what the scheduled deployment runs
        assert summary["stranded_events"] >= 1
        delivered = {r.headers["webhook-id"] for r in receiver.received}
        assert {first, stranded} <= delivered
        for received in receiver.received:
            received.verify(webhook["signing_secret"])

        after_restart = publish()  # the restarted task worker serves new events again
        wait_for(lambda: after_restart in {r.headers["webhook-id"] for r in receiver.received})

    retried = next(d for d in history(webhook["id"]) if d["id"] == parked["id"])
    assert retried["status"] == "succeeded"
    assert [a["trigger"] for a in retried["attempts"]] == ["initial", "retry", "retry"]
    assert {d["event_id"]: d["status"] for d in history(webhook["id"])}[stranded] == "succeeded"
