"""Nothing is lost across a restart: the dispatcher sends what was written while it was down, the
sweep sends parked retries, and the sweep alone dispatches events when no dispatcher runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from flows.retry_deliveries import retry_due_deliveries
from store.db import session_scope
from store.deliveries import create_deliveries
from store.ids import new_id
from store.models import Delivery, Event, Webhook, utcnow
from tasks.webhooks import fanout
from tasks.webhooks.settings import WebhookSettings
from tests.support.polling import wait_until
from tests.support.servers import free_port
from tests.webhooks.receivers import Receiver


def test_parked_retries_and_events_written_while_down_are_delivered_after_a_restart(
    fan_out_worker, organization, create_webhook, publish, history
):
    port = free_port()  # nothing listens there yet: the receiver is down
    webhook = create_webhook(f"http://127.0.0.1:{port}/hook")
    first = publish()
    (parked,) = wait_until(
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
        wait_until(lambda: written_while_down in {r.headers["webhook-id"] for r in receiver.received})
        after_restart = publish()
        wait_until(lambda: after_restart in {r.headers["webhook-id"] for r in receiver.received})
        for received in receiver.received:
            received.verify(webhook["signing_secret"])

    retried = next(d for d in history(webhook["id"]) if d["id"] == parked["id"])
    assert retried["status"] == "succeeded"
    assert [a["trigger"] for a in retried["attempts"]] == ["initial", "retry", "retry"]
    statuses = {d["event_id"]: d["status"] for d in history(webhook["id"])}
    assert statuses[stranded] == statuses[written_while_down] == "succeeded"


def test_one_sweep_takes_over_every_expired_lease_however_many(organization, create_webhook):
    """A dispatcher killed mid-fan-out leaves its deliveries leased; once the leases run out, the next
    sweep sends every one of them, even more than one of its passes takes."""
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url)
        expired = utcnow() - timedelta(seconds=1)
        with session_scope() as session:
            hook = session.get(Webhook, webhook["id"])
            event_ids = []
            for n in range(7):
                event = Event(
                    id=new_id("evt"),
                    organization_id=organization.id,
                    type="drift.detected",
                    data={"model": "churn", "n": n},
                    timestamp=utcnow(),
                    dispatched_at=utcnow(),
                )
                session.add(event)
                session.flush()
                create_deliveries(session, event, [hook], expired)
                event_ids.append(event.id)

        summary = asyncio.run(fanout.retry_due_deliveries(limit=3))

        assert summary.deliveries >= 7
        assert set(event_ids) <= {r.verify(webhook["signing_secret"])["id"] for r in receiver.received}


def test_the_lease_is_the_timeouts_of_a_batch_plus_the_margin_setting():
    settings = WebhookSettings(timeout_seconds=5, inline_retry_seconds=2, lease_margin_seconds=7, concurrency=100)
    now = utcnow()
    # 250 deliveries at 100 in flight: three rounds of timeouts, the inline retry, then the margin.
    assert fanout._lease_until(now, 250, settings) == now + timedelta(seconds=3 * 5 + 2 + 7)
    assert WebhookSettings().lease_margin_seconds == 60
