"""Webhook filters in the real fan-out: webhooks made and changed through the API, events published
through it, deliveries planned and sent by ``tasks.webhooks.fanout`` to receivers on loopback.

Like test_destinations, these fan out in-process on a database of this test's own (the session's
dispatcher never races them for an event); the last test runs the dispatcher process itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import event as sa_event

from store import db as store_db
from store.settings import get_settings
from tasks.webhooks import fanout
from tasks.webhooks.settings import get_webhook_settings
from tests.fakes.slack import SlackFake
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver

FRAUD_ALERTS = {"data.model": {"$glob": "fraud-*"}, "data.severity": {"$gte": "error"}}


def breach(model: str, severity: str = "critical", value: float = 812.5) -> dict:
    return {
        "threshold_id": "thr_1",
        "model": model,
        "metric": "latency_ms.p95",
        "operator": ">",
        "threshold": 250.0,
        "value": value,
        "severity": severity,
    }


@pytest.fixture
def in_process_database(sqlite_url, webhook_env, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()
    store_db.forget_engines()
    yield sqlite_url
    store_db.forget_engines()


@pytest.fixture
def database_url(request) -> str:
    """A database of this test's own, except for the test that runs the session's dispatcher."""
    if "fan_out_worker" in request.fixturenames:
        return request.getfixturevalue("webhook_database_url")
    return request.getfixturevalue("in_process_database")


def fan_out(database_url: str, *event_ids: str) -> fanout.SendSummary:
    return asyncio.run(fanout.fan_out_events(list(event_ids), database_url=database_url))


def delivered(history, webhook: dict) -> list[str]:
    return [delivery["event_id"] for delivery in reversed(history(webhook["id"]))]


def test_an_event_the_filter_does_not_match_creates_no_delivery(create_webhook, publish, history, database_url):
    with Receiver() as filtered_receiver, Receiver() as plain_receiver:
        filtered = create_webhook(filtered_receiver.url, ["threshold.breached"], filter=FRAUD_ALERTS)
        plain = create_webhook(plain_receiver.url, ["threshold.breached"])
        wanted = publish("threshold.breached", breach("fraud-eu", "critical"))
        other_model = publish("threshold.breached", breach("churn", "critical"))
        too_mild = publish("threshold.breached", breach("fraud-us", "warning"))
        summary = fan_out(database_url, wanted, other_model, too_mild)

        assert summary.succeeded == 4
        assert delivered(history, filtered) == [wanted]
        assert [r.verify(filtered["signing_secret"])["id"] for r in filtered_receiver.received] == [wanted]
        assert sorted(delivered(history, plain)) == sorted([wanted, other_model, too_mild])
        assert len(plain_receiver.received) == 3
    # Every event was dispatched, filtered out or not: nothing is left for the sweep.
    assert fanout.undispatched_event_ids(10, database_url) == []


def test_a_put_changes_the_filter_and_the_dispatcher_uses_the_new_one(
    client, organization, create_webhook, publish, history, database_url
):
    url = f"/organizations/{organization.id}/webhooks"
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, ["threshold.breached"], filter={"data.model": "fraud-eu"})
        eu = publish("threshold.breached", breach("fraud-eu"))
        us = publish("threshold.breached", breach("fraud-us"))
        fan_out(database_url, eu, us)  # the dispatcher now holds the first filter, compiled
        assert delivered(history, hook) == [eu]

        body = {"name": hook["name"], "url": receiver.url, "events": ["threshold.breached"]}
        put = client.put(
            f"{url}/{hook['id']}", json=body | {"filter": {"data.model": "fraud-us"}}, headers=organization.headers
        )
        assert put.status_code == 200, put.get_json()
        eu_again = publish("threshold.breached", breach("fraud-eu"))
        us_again = publish("threshold.breached", breach("fraud-us"))
        fan_out(database_url, eu_again, us_again)
        assert delivered(history, hook) == [eu, us_again]

        # A PUT without a filter: every event of the webhook's types again.
        assert client.put(f"{url}/{hook['id']}", json=body, headers=organization.headers).status_code == 200
        churn = publish("threshold.breached", breach("churn"))
        fan_out(database_url, churn)
        assert delivered(history, hook) == [eu, us_again, churn]
        assert [r.payload["id"] for r in receiver.received] == [eu, us_again, churn]

        # POST .../test is for checking the receiver: it is sent whatever the filter.
        client.put(f"{url}/{hook['id']}", json=body | {"filter": {"data.model": "x"}}, headers=organization.headers)
        test = client.post(f"{url}/{hook['id']}/test", headers=organization.headers)
        assert test.status_code == 201 and test.get_json()["status"] == "succeeded", test.get_json()


def test_events_every_filter_turns_down_need_no_fan_out(create_webhook, publish, history, database_url):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, ["threshold.breached"], filter={"data.model": "fraud-eu"})
        wanted = publish("threshold.breached", breach("fraud-eu"))
        unwanted = publish("threshold.breached", breach("churn"))
        # What the dispatcher does with new outbox events before it starts any task run: both are
        # claimed, and only the wanted one has something to send (the run carries that one alone).
        planned = asyncio.run(fanout.plan_fan_out([wanted, unwanted], database_url))
        assert [target.message_id for target, _ in planned] == [wanted]
        assert fanout.undispatched_event_ids(10, database_url) == []
        asyncio.run(fanout.send_planned(planned, database_url=database_url))
        assert delivered(history, hook) == [wanted] and len(receiver.received) == 1


def test_filters_cost_no_query_per_event(create_webhook, publish, database_url):
    """The filter comes with the webhook rows the planner loads anyway: no statement reads it apart."""
    engine = store_db.get_engine(database_url)

    def webhook_reads(events: int, model: str = "fraud") -> int:
        """How many statements read the webhooks table while ``events`` new events are fanned out."""
        event_ids = [publish("threshold.breached", breach(f"{model}-{i}")) for i in range(events)]
        reads: list[str] = []

        def record(_conn, _cursor, statement, *_args) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM webhooks" in statement:
                reads.append(statement)

        sa_event.listen(engine, "before_cursor_execute", record)
        try:
            fan_out(database_url, *event_ids)
        finally:
            sa_event.remove(engine, "before_cursor_execute", record)
        return len(reads)

    with Receiver() as receiver:
        create_webhook(receiver.url, ["threshold.breached"], name="plain")
        plain = webhook_reads(5)
        create_webhook(receiver.url, ["threshold.breached"], name="filtered", filter=FRAUD_ALERTS)
        passing = webhook_reads(5, model="fraud")  # both webhooks get every event
        turned_down = webhook_reads(5, model="churn")  # only the plain one does
        assert len(receiver.received) == 5 + 10 + 5
    # The planner reads the webhooks once per batch of events of one organization, project and type,
    # with their filters; a filter adds no read.
    assert plain == passing == turned_down == 1


def test_a_slack_webhook_posts_only_what_its_filter_matches(create_webhook, publish, database_url):
    with SlackFake() as slack:
        create_webhook(
            slack.hook_url,
            ["threshold.breached", "drift.detected"],
            format="slack",
            filter={"$or": [{"type": "drift.detected"}, {"data.severity": {"$gte": "error"}}]},
        )
        events = [
            publish("threshold.breached", breach("fraud", "warning")),
            publish("threshold.breached", breach("fraud", "critical")),
            publish("drift.detected", {"model": "churn"}),
        ]
        fan_out(database_url, *events)
        # The warning breach is turned down; the critical one and the drift (any severity) are posted.
        # (sent concurrently: in any order)
        assert sorted(message["text"].split(":")[0] for message in slack.messages) == [
            "[CRITICAL] fraud",
            "[WARNING] churn",
        ]


def test_the_dispatcher_process_applies_a_changed_filter(
    fan_out_worker, client, organization, create_webhook, publish, history
):
    url = f"/organizations/{organization.id}/webhooks"
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, ["threshold.breached"], filter={"data.model": "fraud-eu"})
        skipped = publish("threshold.breached", breach("fraud-us"))
        first = publish("threshold.breached", breach("fraud-eu"))
        wait_until(lambda: delivered(history, hook) == [first], what="the matching event's delivery")
        body = {"name": hook["name"], "url": receiver.url, "events": ["threshold.breached"]}
        put = client.put(
            f"{url}/{hook['id']}", json=body | {"filter": {"data.model": "fraud-us"}}, headers=organization.headers
        )
        assert put.status_code == 200, put.get_json()
        second = publish("threshold.breached", breach("fraud-us"))
        publish("threshold.breached", breach("fraud-eu"))
        wait_until(lambda: delivered(history, hook) == [first, second], what="the new filter's delivery")
        assert skipped not in [r.payload["id"] for r in receiver.received]
