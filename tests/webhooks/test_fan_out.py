"""Events in through the API, out through the fan-out task worker, to real receivers on loopback."""

from __future__ import annotations

import threading

from tests.webhooks.receivers import Receiver, Reply, wait_for


def test_event_reaches_subscribed_webhooks_signed_and_recorded(
    fan_out_worker, create_webhook, publish, history
):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url, headers={"Authorization": "Bearer receiver-token"})
        event_id = publish("drift.detected", {"model": "churn", "feature": "age", "value": 0.31})

        (received,) = wait_for(lambda: receiver.received, what="the delivery")
        payload = received.verify(webhook["signing_secret"])
        assert payload["id"] == event_id == received.headers["webhook-id"]
        assert payload["type"] == "drift.detected"
        assert payload["data"]["feature"] == "age"
        assert set(payload) == {"id", "type", "timestamp", "organization_id", "project_id", "data"}
        assert received.headers["authorization"] == "Bearer receiver-token"
        assert received.headers["content-type"] == "application/json"

        (delivery,) = wait_for(
            lambda: [d for d in history(webhook["id"]) if d["status"] == "succeeded"], what="the record"
        )
    assert delivery["event_id"] == event_id
    assert delivery["attempt_count"] == 1
    (attempt,) = delivery["attempts"]
    assert attempt["response_status"] == 200 and attempt["response_body"] == "ok"
    assert attempt["trigger"] == "initial"
    assert attempt["request_headers"]["authorization"] == "********"
    assert attempt["request_headers"]["webhook-id"] == event_id


def test_slow_receiver_does_not_delay_a_fast_one(fan_out_worker, create_webhook, publish, history):
    release = threading.Event()
    with Receiver(Reply(hold=release, hold_seconds=20)) as slow, Receiver() as fast:
        slow_hook = create_webhook(slow.url)
        fast_hook = create_webhook(fast.url)
        publish("drift.detected")

        wait_for(lambda: slow.received, what="the slow receiver to be called")
        (fast_delivery,) = wait_for(
            lambda: [d for d in history(fast_hook["id"]) if d["status"] == "succeeded"],
            what="the fast delivery",
        )
        # The fast delivery is settled while the slow receiver still holds its request open.
        assert not slow.received[0].answered
        (slow_delivery,) = history(slow_hook["id"])
        assert slow_delivery["status"] == "pending" and slow_delivery["attempts"] == []
        assert fast_delivery["attempts"][0]["response_status"] == 200

        release.set()
        wait_for(
            lambda: [d for d in history(slow_hook["id"]) if d["status"] == "succeeded"],
            what="the slow delivery once released",
        )
