"""Webhook throttling in the real fan-out: webhooks made through the API, events published through it,
deliveries planned and sent by ``tasks.webhooks.fanout`` to receivers on loopback, cooldowns in the
database. (Planners racing for one group: tests/store/test_webhook_cooldowns.py, on SQLite and PostgreSQL.)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from store.db import session_scope
from store.models import WebhookCooldown, utcnow
from tasks.webhooks import fanout
from tests.webhooks.receivers import Receiver
from tests.webhooks.test_filters import in_process_database  # noqa: F401 (a fixture)

TYPES = ["threshold.breached", "threshold.resolved"]
THROTTLE = {"group_by": ["data.model", "data.feature"], "cooldown_seconds": 3600}


@pytest.fixture
def database_url(in_process_database) -> str:  # noqa: F811
    """A database of this test's own: the session's dispatcher never takes these events."""
    return in_process_database


def breach(model: str, feature: str = "amount", value: float = 0.4) -> dict:
    return {
        "threshold_id": "thr_1",
        "model": model,
        "metric": "drift.psi",
        "operator": ">",
        "threshold": 0.2,
        "value": value,
        "severity": "error",
        "feature": feature,
    }


def resolution(model: str, opened_by: str | None = None) -> dict:
    return {"threshold_id": "thr_1", "model": model, "metric": "drift.psi", "episode_event_id": opened_by}


def fan_out(database_url: str, *event_ids: str) -> fanout.SendSummary:
    return asyncio.run(fanout.fan_out_events(list(event_ids), database_url=database_url))


def by_event(history, webhook: dict, **query) -> dict[str, dict]:
    return {delivery["event_id"]: delivery for delivery in history(webhook["id"], **query)}


def test_a_repeat_within_the_cooldown_is_suppressed_and_names_the_delivery_it_repeats(
    create_webhook, publish, history, database_url
):
    with Receiver() as receiver, Receiver() as plain_receiver:
        hook = create_webhook(receiver.url, TYPES, throttle=THROTTLE)
        create_webhook(plain_receiver.url, TYPES)
        first = publish("threshold.breached", breach("fraud", "amount"))
        repeat = publish("threshold.breached", breach("fraud", "amount", value=0.9))
        other_feature = publish("threshold.breached", breach("fraud", "country"))
        other_model = publish("threshold.breached", breach("churn", "amount"))
        fan_out(database_url, first, repeat)
        fan_out(database_url, other_feature, other_model)  # a later run: the cooldown is in the database

        deliveries = by_event(history, hook)
        assert {event: d["status"] for event, d in deliveries.items()} == {
            first: "succeeded",
            repeat: "suppressed",
            other_feature: "succeeded",
            other_model: "succeeded",
        }
        assert deliveries[repeat]["repeats"] == deliveries[first]["id"]
        assert deliveries[repeat]["attempts"] == [] and deliveries[repeat]["next_attempt_at"] is None
        assert deliveries[first]["repeats"] is None
        assert sorted(r.payload["id"] for r in receiver.received) == sorted([first, other_feature, other_model])
        # A webhook without a throttle gets every event.
        assert len(plain_receiver.received) == 4

        # The history shows them by status; suppressed ones are settled: nothing is due, nothing to recover.
        assert list(by_event(history, hook, status="suppressed")) == [repeat]
        assert fanout.undispatched_event_ids(10, database_url) == []
        summary = asyncio.run(fanout.retry_due_deliveries(now=utcnow() + timedelta(days=1), database_url=database_url))
        assert summary.succeeded == summary.failed == 0
        assert fanout.recoverable_count(hook["id"], utcnow() - timedelta(hours=1), None, database_url) == 0
        assert len(receiver.received) == 3


def test_after_the_cooldown_the_next_event_is_sent(create_webhook, publish, history, database_url):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES, throttle={"group_by": ["data.model"], "cooldown_seconds": 3600})
        first = publish("threshold.breached", breach("fraud"))
        fan_out(database_url, first)
        # An hour on: the stored cooldown ended.
        with session_scope(database_url) as session:
            session.execute(update(WebhookCooldown).values(until=utcnow() - timedelta(seconds=1)))
        later = publish("threshold.breached", breach("fraud"))
        again = publish("threshold.breached", breach("fraud"))
        fan_out(database_url, later, again)
        deliveries = by_event(history, hook)
        assert [deliveries[e]["status"] for e in (first, later, again)] == ["succeeded", "succeeded", "suppressed"]
        # The repeat names the delivery that opened the new cooldown, not the first one.
        assert deliveries[again]["repeats"] == deliveries[later]["id"]


def test_a_short_cooldown_passes_by_itself(create_webhook, publish, history, database_url):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES, throttle={"group_by": ["data.model"], "cooldown_seconds": 1})
        first, repeat = publish("threshold.breached", breach("m")), publish("threshold.breached", breach("m"))
        fan_out(database_url, first, repeat)
        asyncio.run(asyncio.sleep(1.1))
        later = publish("threshold.breached", breach("m"))
        fan_out(database_url, later)
        deliveries = by_event(history, hook)
        assert [deliveries[e]["status"] for e in (first, repeat, later)] == ["succeeded", "suppressed", "succeeded"]
        assert len(receiver.received) == 2


def test_an_episode_end_is_always_sent_and_ends_its_groups_cooldown(create_webhook, publish, history, database_url):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES, throttle=THROTTLE)
        fraud = publish("threshold.breached", breach("fraud", "amount"))
        churn = publish("threshold.breached", breach("churn", "amount"))
        fan_out(database_url, fraud, churn)
        # threshold.resolved has no data.feature: it ends the cooldowns of every feature of its model.
        ended = publish("threshold.resolved", resolution("fraud", fraud))
        ended_twice = publish("threshold.resolved", resolution("fraud", fraud))
        fraud_again = publish("threshold.breached", breach("fraud", "amount"))
        churn_again = publish("threshold.breached", breach("churn", "amount"))
        fan_out(database_url, ended, ended_twice, fraud_again, churn_again)
        deliveries = by_event(history, hook)
        assert {event: d["status"] for event, d in deliveries.items()} == {
            fraud: "succeeded",
            churn: "succeeded",
            ended: "succeeded",
            ended_twice: "succeeded",  # an episode's end is never suppressed
            fraud_again: "succeeded",  # a new episode: its cooldown was ended
            churn_again: "suppressed",  # another model's cooldown runs on
        }
        assert deliveries[churn_again]["repeats"] == deliveries[churn]["id"]
        assert len(receiver.received) == 5


def test_drift_resolved_ends_the_drift_detected_cooldown(create_webhook, publish, history, database_url):
    with Receiver() as receiver:
        hook = create_webhook(
            receiver.url,
            ["drift.detected", "drift.resolved"],
            throttle={"group_by": ["data.model"], "cooldown_seconds": 3600},
        )
        opened = publish("drift.detected", {"model": "churn"})
        repeat = publish("drift.detected", {"model": "churn"})
        fan_out(database_url, opened, repeat)
        ended = publish("drift.resolved", {"model": "churn", "episode_event_id": opened})
        fan_out(database_url, ended)
        reopened = publish("drift.detected", {"model": "churn"})
        fan_out(database_url, reopened)
        deliveries = by_event(history, hook)
        assert [deliveries[e]["status"] for e in (opened, repeat, ended, reopened)] == [
            "succeeded",
            "suppressed",
            "succeeded",
            "succeeded",
        ]


def test_a_put_that_changes_the_throttle_starts_every_group_afresh(
    client, organization, create_webhook, publish, history, database_url
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES, throttle={"group_by": ["data.model"], "cooldown_seconds": 3600})
        first = publish("threshold.breached", breach("fraud"))
        fan_out(database_url, first)
        body = {"name": hook["name"], "url": receiver.url, "events": TYPES}
        put = client.put(
            f"/organizations/{organization.id}/webhooks/{hook['id']}",
            json=body | {"throttle": {"group_by": ["data.model"], "cooldown_seconds": 60}},
            headers=organization.headers,
        )
        assert put.status_code == 200, put.get_json()
        after_put = publish("threshold.breached", breach("fraud"))
        fan_out(database_url, after_put)
        # Without a throttle, nothing is held back.
        client.put(f"/organizations/{organization.id}/webhooks/{hook['id']}", json=body, headers=organization.headers)
        unthrottled = [publish("threshold.breached", breach("fraud")) for _ in range(2)]
        fan_out(database_url, *unthrottled)
        deliveries = by_event(history, hook)
        assert {d["status"] for d in deliveries.values()} == {"succeeded"} and len(receiver.received) == 4
