"""Silences in the real fan-out: silences and webhooks made through the API, events published through it,
deliveries planned and sent by ``tasks.webhooks.fanout`` to receivers on loopback; recovery of silenced
deliveries by the API's ``recover-deliveries`` Prefect run; the last test runs the dispatcher process.
(Planners on SQLite and PostgreSQL: tests/store/test_silences.py; the API's checks: tests/api/test_silences.py.)
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from store.models import utcnow
from tasks.webhooks import fanout, silences
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver
from tests.webhooks.test_filters import in_process_database  # noqa: F401 (a fixture)
from tests.webhooks.test_throttle import breach, by_event, fan_out

TYPES = ["threshold.breached", "threshold.resolved"]
FRAUD = {"data.model": {"$glob": "fraud-*"}}


@pytest.fixture
def database_url(request) -> str:
    """A database of this test's own, except for the test that runs the session's dispatcher."""
    if "fan_out_worker" in request.fixturenames:
        return request.getfixturevalue("webhook_database_url")
    return request.getfixturevalue("in_process_database")


@pytest.fixture
def create_silence(client, organization):
    """``create_silence(matchers, ends_in=timedelta(hours=1), **fields)`` through the API; returns the JSON."""

    def _create(matchers: dict, ends_in: timedelta = timedelta(hours=1), **fields) -> dict:
        body = {
            "matchers": matchers,
            "ends_at": (utcnow() + ends_in).isoformat(),
            "comment": "maintenance of the fraud models",
            "created_by": "sre@example.com",
        }
        response = client.post(
            f"/organizations/{organization.id}/silences", json=body | fields, headers=organization.headers
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return _create


@pytest.fixture
def expire_silence(client, organization):
    def _expire(silence: dict) -> dict:
        path = f"/organizations/{organization.id}/silences/{silence['id']}"
        assert client.delete(path, headers=organization.headers).status_code == 204
        return client.get(path, headers=organization.headers).get_json()

    return _expire


def received_ids(receiver: Receiver) -> list[str]:
    return [request.payload["id"] for request in receiver.received]


def test_a_matching_event_is_recorded_silenced_by_every_subscribed_webhook_and_sent_to_none(
    create_webhook, create_silence, publish, history, database_url
):
    with Receiver() as plain_receiver, Receiver() as filtered_receiver, Receiver() as other_receiver:
        plain = create_webhook(plain_receiver.url, TYPES)
        filtered = create_webhook(filtered_receiver.url, TYPES, filter={"data.severity": {"$gte": "error"}})
        # A webhook whose filter turns the event down gets no delivery of it, silenced or not.
        other = create_webhook(other_receiver.url, TYPES, filter={"data.model": "churn"})
        silence = create_silence(FRAUD)
        assert silence["state"] == "active"
        silenced = publish("threshold.breached", breach("fraud-eu"))
        sent = publish("threshold.breached", breach("churn"))
        summary = fan_out(database_url, silenced, sent)

        assert summary.succeeded == 3
        for hook, receiver in ((plain, plain_receiver), (filtered, filtered_receiver)):
            deliveries = by_event(history, hook)
            assert deliveries[silenced]["status"] == "silenced"
            assert deliveries[silenced]["silence_id"] == silence["id"]
            assert deliveries[silenced]["attempts"] == [] and deliveries[silenced]["next_attempt_at"] is None
            assert deliveries[sent]["status"] == "succeeded" and deliveries[sent]["silence_id"] is None
            assert received_ids(receiver) == [sent]
            assert list(by_event(history, hook, status="silenced")) == [silenced]
        assert list(by_event(history, other)) == [sent] and received_ids(other_receiver) == [sent]

        # Settled: the event is dispatched, nothing is due; recover takes silenced ones only when asked.
        assert fanout.undispatched_event_ids(10, database_url) == []
        sweep = asyncio.run(fanout.retry_due_deliveries(now=utcnow() + timedelta(days=1), database_url=database_url))
        assert sweep.succeeded == sweep.failed == 0
        since = utcnow() - timedelta(hours=1)
        assert fanout.recoverable_count(plain["id"], since, None, database_url) == 0
        assert fanout.recoverable_count(plain["id"], since, None, database_url, ["silenced"]) == 1
        assert len(plain_receiver.received) == 1


def test_an_expired_silence_lets_events_through_and_keeps_what_it_silenced(
    create_webhook, create_silence, expire_silence, publish, history, database_url
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES)
        silence = create_silence(FRAUD)
        during = publish("threshold.breached", breach("fraud-eu"))
        fan_out(database_url, during)
        expired = expire_silence(silence)
        assert expired["state"] == "expired"
        after = publish("threshold.breached", breach("fraud-eu"))
        fan_out(database_url, after)

        deliveries = by_event(history, hook)
        assert deliveries[during]["status"] == "silenced" and deliveries[during]["silence_id"] == silence["id"]
        assert deliveries[after]["status"] == "succeeded"
        assert received_ids(receiver) == [after]


def test_a_silenced_event_neither_opens_nor_repeats_a_cooldown(
    create_webhook, create_silence, expire_silence, publish, history, database_url
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES, throttle={"group_by": ["data.model"], "cooldown_seconds": 3600})
        silence = create_silence(FRAUD)
        held = publish("threshold.breached", breach("fraud-eu"))
        fan_out(database_url, held)
        expire_silence(silence)
        first, repeat = (publish("threshold.breached", breach("fraud-eu")) for _ in range(2))
        fan_out(database_url, first, repeat)

        deliveries = by_event(history, hook)
        assert [deliveries[e]["status"] for e in (held, first, repeat)] == ["silenced", "succeeded", "suppressed"]
        assert deliveries[repeat]["repeats"] == deliveries[first]["id"]
        assert received_ids(receiver) == [first]


def test_events_are_judged_by_when_they_happened_not_when_they_are_dispatched(
    create_webhook, create_silence, publish, history, database_url
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES)
        # Published before the silence began, dispatched after: sent.
        before = publish("threshold.breached", breach("fraud-eu"))
        create_silence(FRAUD, ends_in=timedelta(seconds=2))
        # A silence that has not begun silences nothing yet.
        create_silence({"data.model": "churn"}, starts_at=(utcnow() + timedelta(hours=1)).isoformat())
        during = publish("threshold.breached", breach("fraud-us"))
        churn = publish("threshold.breached", breach("churn"))
        time.sleep(2.1)  # the first silence ends before these are dispatched ...
        after = publish("threshold.breached", breach("fraud-us"))
        fan_out(database_url, before, during, churn, after)

        deliveries = by_event(history, hook)
        # ... yet the one published while it was active stays silenced.
        assert {event: d["status"] for event, d in deliveries.items()} == {
            before: "succeeded",
            during: "silenced",
            churn: "succeeded",
            after: "succeeded",
        }
        assert sorted(received_ids(receiver)) == sorted([before, churn, after])


def test_silences_are_loaded_once_per_silence_set_version(
    create_webhook, create_silence, expire_silence, publish, history, database_url
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES)
        # An organization that never had a silence loads nothing.
        loads = silences.loads()
        fan_out(database_url, *[publish("threshold.breached", breach("fraud-eu")) for _ in range(5)])
        assert silences.loads() == loads

        first = create_silence(FRAUD)
        fan_out(database_url, *[publish("threshold.breached", breach("fraud-eu")) for _ in range(10)])
        fan_out(database_url, *[publish("threshold.breached", breach("churn")) for _ in range(10)])
        assert silences.loads() == loads + 1  # 20 events, two runs: one load

        second = create_silence({"data.model": "churn"})
        churn = publish("threshold.breached", breach("churn"))
        fan_out(database_url, churn)
        expire_silence(first)
        fraud = publish("threshold.breached", breach("fraud-eu"))
        fan_out(database_url, fraud)
        assert silences.loads() == loads + 3  # a new version each time
        deliveries = by_event(history, hook)
        assert deliveries[churn]["silence_id"] == second["id"] and deliveries[fraud]["status"] == "succeeded"
        assert len(receiver.received) == 5 + 10 + 1


def test_recover_sends_silenced_deliveries_in_order_when_asked(
    client, organization, create_webhook, create_silence, expire_silence, publish, history, database_url
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES)
        window_start = utcnow() - timedelta(seconds=1)
        silence = create_silence({"project_id": "payments"})
        held = [publish("threshold.breached", breach(f"fraud-{n}"), project_id="payments") for n in range(3)]
        fan_out(database_url, *held)
        expire_silence(silence)
        recover = f"/organizations/{organization.id}/webhooks/{hook['id']}/recover"

        # By default recover sends what failed, not what a silence held back.
        default = client.post(recover, json={"since": window_start.isoformat()}, headers=organization.headers)
        assert default.status_code == 202 and default.get_json() == {"deliveries": 0, "flow_run_id": None}

        response = client.post(
            recover,
            json={"since": window_start.isoformat(), "statuses": ["silenced"]},
            headers=organization.headers,
        )
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["deliveries"] == 3 and response.get_json()["flow_run_id"]
        wait_until(lambda: len(receiver.received) >= 3, timeout=60, what="the recovered deliveries")
        assert received_ids(receiver) == held  # in order of creation

        def settled() -> dict[str, dict] | None:
            deliveries = by_event(history, hook)
            return deliveries if all(d["status"] == "succeeded" for d in deliveries.values()) else None

        for delivery in wait_until(settled, what="every recovered delivery settled").values():
            assert [a["trigger"] for a in delivery["attempts"]] == ["recover"]
            assert delivery["silence_id"] == silence["id"]  # still says why it was late
        again = client.post(
            recover, json={"since": window_start.isoformat(), "statuses": ["silenced"]}, headers=organization.headers
        )
        assert again.get_json() == {"deliveries": 0, "flow_run_id": None}


def test_the_dispatcher_process_silences_matching_events(
    fan_out_worker, create_webhook, create_silence, expire_silence, publish, history
):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, TYPES)
        silence = create_silence(FRAUD)
        silenced = publish("threshold.breached", breach("fraud-eu"))
        sent = publish("threshold.breached", breach("churn"))
        wait_until(lambda: len(history(hook["id"])) == 2 and received_ids(receiver), what="both events dispatched")
        expire_silence(silence)
        after = publish("threshold.breached", breach("fraud-eu"))
        wait_until(lambda: len(receiver.received) == 2, what="the event after the silence expired")

        deliveries = by_event(history, hook)
        assert deliveries[silenced]["status"] == "silenced" and deliveries[silenced]["silence_id"] == silence["id"]
        assert received_ids(receiver) == [sent, after]
