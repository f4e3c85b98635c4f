"""Deliveries a silence or a throttle held back (``silenced``, ``suppressed``: recorded, never sent), sent on
request: an explicit redeliver of one sends it; recover without ``statuses`` never does. Webhooks, silences
and events through the API, deliveries planned and sent by ``tasks.webhooks.fanout`` to loopback receivers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store.db import session_scope
from store.models import WebhookCooldown, utcnow
from tasks.webhooks import fanout
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver, Reply
from tests.webhooks.test_filters import in_process_database  # noqa: F401 (a fixture)
from tests.webhooks.test_silences import create_silence  # noqa: F401 (a fixture)
from tests.webhooks.test_throttle import breach, by_event, fan_out

TYPES = ["threshold.breached", "threshold.resolved"]
THROTTLE = {"group_by": ["data.model"], "cooldown_seconds": 3600}


@pytest.fixture
def database_url(in_process_database) -> str:  # noqa: F811
    """A database of this test's own: the session's dispatcher never takes these events."""
    return in_process_database


@pytest.fixture
def held_delivery(create_webhook, create_silence, publish, history, database_url):  # noqa: F811
    """``held_delivery(kind, receiver_url)``: a webhook with one delivery held back (``silenced`` by a silence,
    or ``suppressed`` as a throttled repeat); returns (webhook, that delivery)."""

    def _make(kind: str, url: str) -> tuple[dict, dict]:
        if kind == "silenced":
            hook = create_webhook(url, TYPES)
            create_silence({"data.model": "fraud"})
            held = publish("threshold.breached", breach("fraud"))
            fan_out(database_url, held)
        else:
            hook = create_webhook(url, TYPES, throttle=THROTTLE)
            first = publish("threshold.breached", breach("fraud"))
            held = publish("threshold.breached", breach("fraud", value=0.9))
            fan_out(database_url, first, held)
        delivery = by_event(history, hook)[held]
        assert delivery["status"] == kind and delivery["attempts"] == []
        return hook, delivery

    return _make


def redeliver(client, organization, hook: dict, delivery: dict):
    return client.post(
        f"/organizations/{organization.id}/webhooks/{hook['id']}/history/{delivery['id']}/redeliver",
        headers=organization.headers,
    )


@pytest.mark.parametrize("kind", ["silenced", "suppressed"])
def test_an_explicit_redeliver_sends_a_held_delivery_and_its_status_follows_the_attempt(
    client, organization, held_delivery, database_url, kind
):
    with Receiver(Reply(200)) as receiver:
        hook, delivery = held_delivery(kind, receiver.url)
        received_before = len(receiver.received)
        response = redeliver(client, organization, hook, delivery)

        assert response.status_code == 200, response.get_json()
        sent = response.get_json()
        assert sent["status"] == "succeeded" and sent["attempt_count"] == 1 and sent["next_attempt_at"] is None
        assert [attempt["trigger"] for attempt in sent["attempts"]] == ["redeliver"]
        assert sent["attempts"][0]["response_status"] == 200
        # Why it was held back stays on record.
        assert (sent["silence_id"], sent["repeats"]) == (delivery["silence_id"], delivery["repeats"])
        assert sent["silence_id"] if kind == "silenced" else sent["repeats"]
        (received,) = receiver.received[received_before:]
        assert received.headers["webhook-id"] == delivery["event_id"]
        assert received.verify(hook["signing_secret"])["id"] == delivery["event_id"]
    if kind == "suppressed":  # sending a repeat by hand neither ends nor reopens the group's cooldown
        with session_scope(database_url) as session:
            assert list(session.scalars(select(WebhookCooldown.delivery_id))) == [delivery["repeats"]]


@pytest.mark.parametrize("kind", ["silenced", "suppressed"])
def test_a_held_delivery_whose_redeliver_fails_is_failed_with_the_attempt_on_record(
    client, organization, held_delivery, database_url, kind
):
    # The throttled webhook's first event is sent (200); the redeliver is turned down (503).
    with Receiver(Reply(200), Reply(503)) if kind == "suppressed" else Receiver(Reply(503)) as receiver:
        hook, delivery = held_delivery(kind, receiver.url)
        response = redeliver(client, organization, hook, delivery)

    assert response.status_code == 200, response.get_json()
    sent = response.get_json()
    # Like any manual redelivery of a delivery without a scheduled retry: failed, nothing scheduled.
    assert sent["status"] == "failed" and sent["next_attempt_at"] is None and sent["attempt_count"] == 1
    assert [(a["trigger"], a["response_status"]) for a in sent["attempts"]] == [("redeliver", 503)]
    assert "503" in sent["last_error"]
    # From now on it is a failed delivery like any other: recover without statuses takes it.
    assert fanout.recoverable_count(hook["id"], utcnow() - timedelta(hours=1), None, database_url) == 1


def test_recover_without_statuses_sends_failed_deliveries_only(
    client, organization, create_webhook, create_silence, publish, history, database_url  # noqa: F811
):
    # 200 for the first event of the group, 400 (failed, not retried) for the next one sent, then 200.
    with Receiver(Reply(200), Reply(400), Reply(200)) as receiver:
        hook = create_webhook(receiver.url, TYPES, throttle=THROTTLE)
        window_start = utcnow() - timedelta(seconds=1)
        first = publish("threshold.breached", breach("fraud"))
        repeat = publish("threshold.breached", breach("fraud", value=0.9))
        rejected = publish("threshold.breached", breach("churn"))
        fan_out(database_url, first, repeat)
        fan_out(database_url, rejected)  # after: the receiver answers in the order it is sent to
        create_silence({"data.model": "payments"})
        silenced = publish("threshold.breached", breach("payments"))
        fan_out(database_url, silenced)
        statuses = {event: d["status"] for event, d in by_event(history, hook).items()}
        assert statuses == {first: "succeeded", repeat: "suppressed", rejected: "failed", silenced: "silenced"}

        path = f"/organizations/{organization.id}/webhooks/{hook['id']}/recover"
        response = client.post(path, json={"since": window_start.isoformat()}, headers=organization.headers)
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["deliveries"] == 1

        wait_until(lambda: by_event(history, hook)[rejected]["status"] == "succeeded", what="the recovered delivery")
        after = by_event(history, hook)
        assert {event: d["status"] for event, d in after.items()} == statuses | {rejected: "succeeded"}
        assert [r.payload["id"] for r in receiver.received] == [first, rejected, rejected]
        assert after[repeat]["attempts"] == [] and after[silenced]["attempts"] == []

        # A throttled repeat is never recovered (redeliver it by hand); silenced ones only when asked.
        suppressed = client.post(
            path, json={"since": window_start.isoformat(), "statuses": ["suppressed"]}, headers=organization.headers
        )
        assert suppressed.status_code == 422
        asked = client.post(
            path, json={"since": window_start.isoformat(), "statuses": ["silenced"]}, headers=organization.headers
        )
        assert asked.status_code == 202 and asked.get_json()["deliveries"] == 1
        wait_until(lambda: by_event(history, hook)[silenced]["status"] == "succeeded", what="the silenced delivery")
        assert by_event(history, hook)[repeat]["status"] == "suppressed"
