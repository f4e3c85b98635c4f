"""Events in through the API, out through the webhook dispatcher, to real receivers on loopback."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver, Reply


def test_event_reaches_subscribed_webhooks_signed_and_recorded(
    fan_out_worker, create_webhook, publish, history
):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url, headers={"Authorization": "Bearer receiver-token"})
        event_id = publish("drift.detected", {"model": "churn", "feature": "age", "value": 0.31})

        (received,) = wait_until(lambda: receiver.received, what="the delivery")
        payload = received.verify(webhook["signing_secret"])
        assert payload["id"] == event_id == received.headers["webhook-id"]
        assert payload["type"] == "drift.detected"
        assert payload["data"]["feature"] == "age"
        assert set(payload) == {"id", "type", "timestamp", "organization_id", "project_id", "data"}
        assert received.headers["authorization"] == "Bearer receiver-token"
        assert received.headers["content-type"] == "application/json"

        (delivery,) = wait_until(
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

        wait_until(lambda: slow.received, what="the slow receiver to be called")
        (fast_delivery,) = wait_until(
            lambda: [d for d in history(fast_hook["id"]) if d["status"] == "succeeded"],
            what="the fast delivery",
        )
        # The fast delivery is settled while the slow receiver still holds its request open.
        assert not slow.received[0].answered
        (slow_delivery,) = history(slow_hook["id"])
        assert slow_delivery["status"] == "pending" and slow_delivery["attempts"] == []
        assert fast_delivery["attempts"][0]["response_status"] == 200

        release.set()
        wait_until(
            lambda: [d for d in history(slow_hook["id"]) if d["status"] == "succeeded"],
            what="the slow delivery once released",
        )


def test_only_enabled_webhooks_subscribed_to_the_type_and_project_receive(
    fan_out_worker, create_webhook, publish, history
):
    receivers = {name: Receiver() for name in ("any_project", "same_project", "other_project", "other_type", "off")}
    for receiver in receivers.values():
        receiver.__enter__()
    try:
        hooks = {
            "any_project": create_webhook(receivers["any_project"].url, ["drift.detected", "model.registered"]),
            "same_project": create_webhook(receivers["same_project"].url, project_id="fraud"),
            "other_project": create_webhook(receivers["other_project"].url, project_id="churn"),
            "other_type": create_webhook(receivers["other_type"].url, ["threshold.breached"]),
            "off": create_webhook(receivers["off"].url, enabled=False),
        }
        event_id = publish("drift.detected", project_id="fraud")

        for name in ("any_project", "same_project"):
            (delivery,) = wait_until(
                lambda name=name: [d for d in history(hooks[name]["id"]) if d["status"] == "succeeded"],
                what=f"delivery to {name}",
            )
            assert delivery["event_id"] == event_id
            assert receivers[name].received[0].verify(hooks[name]["signing_secret"])["project_id"] == "fraud"
        # The fan-out created all of its deliveries at once, so the others were never meant to get one.
        for name in ("other_project", "other_type", "off"):
            assert history(hooks[name]["id"]) == []
            assert receivers[name].received == []
    finally:
        for receiver in receivers.values():
            receiver.__exit__(None, None, None)


def test_failing_then_succeeding_receiver_is_retried_with_the_same_webhook_id(
    fan_out_worker, create_webhook, publish, history
):
    with Receiver(Reply(503, body=b"busy"), Reply(200)) as receiver:
        webhook = create_webhook(receiver.url)
        event_id = publish()
        (delivery,) = wait_until(
            lambda: [d for d in history(webhook["id"]) if d["status"] == "succeeded"], what="the retry"
        )
    assert [a["response_status"] for a in delivery["attempts"]] == [503, 200]
    assert [a["trigger"] for a in delivery["attempts"]] == ["initial", "retry"]
    assert delivery["attempts"][0]["response_body"] == "busy"
    assert delivery["attempt_count"] == 2
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]
    for received in receiver.received:
        received.verify(webhook["signing_secret"])


def test_retry_after_pushes_the_next_attempt_into_the_database_schedule(
    fan_out_worker, create_webhook, publish, history
):
    with Receiver(Reply(429, headers={"Retry-After": "120"})) as receiver:
        webhook = create_webhook(receiver.url)
        publish()
        (delivery,) = wait_until(
            lambda: [d for d in history(webhook["id"]) if d["status"] == "retrying"], what="the parked retry"
        )
    (attempt,) = delivery["attempts"]
    assert attempt["response_status"] == 429
    due = datetime.fromisoformat(delivery["next_attempt_at"])
    assert due - datetime.fromisoformat(attempt["attempted_at"]) >= timedelta(seconds=120)
    assert len(receiver.received) == 1


def test_410_gone_disables_the_webhook(fan_out_worker, client, organization, create_webhook, publish, history):
    with Receiver(Reply(410)) as receiver, Receiver() as witness:
        webhook = create_webhook(receiver.url)
        witness_hook = create_webhook(witness.url)
        publish()
        (delivery,) = wait_until(
            lambda: [d for d in history(webhook["id"]) if d["status"] == "failed"], what="the failure"
        )
        record = client.get(
            f"/organizations/{organization.id}/webhooks/{webhook['id']}", headers=organization.headers
        ).get_json()
        assert record["enabled"] is False
        assert "410" in record["disabled_reason"]
        assert delivery["attempt_count"] == 1

        second = publish()  # a disabled webhook gets nothing more; the witness shows it was fanned out
        wait_until(lambda: [d for d in history(witness_hook["id"]) if d["event_id"] == second and d["attempts"]])
        assert len(history(webhook["id"])) == 1
    assert len(receiver.received) == 1


def test_other_4xx_fails_without_retry(fan_out_worker, create_webhook, publish, history):
    with Receiver(Reply(400, body=b"bad signature?")) as receiver:
        webhook = create_webhook(receiver.url)
        publish()
        (delivery,) = wait_until(
            lambda: [d for d in history(webhook["id"]) if d["status"] == "failed"], what="the failure"
        )
    assert delivery["next_attempt_at"] is None
    assert delivery["last_error"] == "HTTP 400"
    assert [a["response_status"] for a in delivery["attempts"]] == [400]
