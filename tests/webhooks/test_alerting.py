"""Alerting end to end, through the real webhook dispatcher, to the Slack, Teams and PagerDuty fakes:
a whole breach episode, a receiver Slack removed disabling its webhook (and the operational event
that tells another webhook), and recovery after a receiver's outage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from store import db as store_db
from store.models import utcnow
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.slack import SlackFake
from tests.fakes.teams import TeamsFake
from tests.monitoring.conftest import REFERENCE, T0, make_records
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
EPISODE_EVENTS = ["threshold.breached", "threshold.resolved"]


@pytest.fixture
def flows_on_webhook_database(webhook_env) -> Iterator[None]:
    """The in-process flows (drift checks, recoveries) open the directory's shared database."""
    store_db.forget_engines()
    yield
    store_db.forget_engines()


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyFake]:
    with PagerDutyFake(ROUTING_KEY) as fake:
        yield fake


@pytest.fixture
def teams() -> Iterator[TeamsFake]:
    with TeamsFake() as fake:
        yield fake


def hour(offset: int) -> dict[str, str]:
    return {"from": (T0 + timedelta(hours=offset)).isoformat(), "to": (T0 + timedelta(hours=offset + 1)).isoformat()}


def test_a_breach_episode_pages_and_resolves_with_one_dedup_key(
    fan_out_worker, flows_on_webhook_database, client, organization, create_webhook, slack, pagerduty, teams
):
    org = f"/organizations/{organization.id}"
    for start, shift, seed in ((T0, 0.0, 1), (T0 + timedelta(hours=2), 1.0, 2), (T0 + timedelta(hours=4), 0.0, 4)):
        response = client.post(
            f"{org}/inference-logs",
            json={"records": make_records("churn", start, 300, shift, seed)},
            headers=organization.headers,
        )
        assert response.status_code == 202, response.get_json()
    hooks = {
        "slack": create_webhook(slack.hook_url, EPISODE_EVENTS, format="slack"),
        "teams": create_webhook(teams.workflow_url, EPISODE_EVENTS, format="teams"),
        "pagerduty": create_webhook(
            pagerduty.events_url,
            EPISODE_EVENTS,
            format="pagerduty",
            credentials={"routing_key": ROUTING_KEY},
            config={"source": "churn-prod"},
        ),
    }
    threshold = client.post(
        f"{org}/thresholds",
        json={"model": "churn", "metric": "drift.psi", "operator": ">", "value": 0.2, "severity": "critical"},
        headers=organization.headers,
    ).get_json()

    def check(window: dict) -> bool:
        body = {"model": "churn", "reference": REFERENCE, "current": window, "method": "psi", "features": ["x"]}
        response = client.post(f"{org}/drift-checks", json=body, headers=organization.headers)
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()["drifted"]

    assert check(hour(2)) is True  # the breach: the episode begins
    (trigger,) = wait_until(lambda: pagerduty.events, what="the PagerDuty trigger")
    (breach,) = wait_until(lambda: slack.messages, what="the Slack message of the breach")
    wait_until(lambda: teams.messages, what="the Teams card of the breach")
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "critical"  # the threshold's severity
    assert trigger["payload"]["source"] == "churn-prod" and trigger["payload"]["class"] == "threshold.breached"
    assert trigger["payload"]["custom_details"]["threshold_id"] == threshold["id"]
    assert breach["text"].startswith("[CRITICAL] churn: Threshold breached: drift.psi = ")

    assert check(hour(2)) is True  # the breach continues: nothing more is sent
    assert check(hour(4)) is False  # back within bounds: the episode ends
    resolve = wait_until(lambda: pagerduty.events[1:], what="the PagerDuty resolve")[0]
    (_, resolution) = wait_until(lambda: slack.messages[1:] and slack.messages, what="the Slack message of the end")
    assert resolve == {"routing_key": ROUTING_KEY, "dedup_key": trigger["dedup_key"], "event_action": "resolve"}
    assert pagerduty.incidents == {trigger["dedup_key"]: "resolved"}
    assert resolution["text"].startswith("[RESOLVED] churn: Threshold resolved: drift.psi = ")
    (_, card) = wait_until(lambda: teams.messages[1:] and teams.messages, what="the Teams card of the end")
    assert card["attachments"][0]["content"]["body"][0]["color"] == "Good"

    # The resolution names the breach: the dedup key is the id of the event that opened the episode.
    state = client.get(f"{org}/thresholds/{threshold['id']}", headers=organization.headers).get_json()["states"][0]
    assert state["breached"] is False and state["episode_event_id"] is None
    for hook in hooks.values():
        deliveries = client.get(f"{org}/webhooks/{hook['id']}/history", headers=organization.headers).get_json()[
            "items"
        ]
        assert sorted(d["event_type"] for d in deliveries) == EPISODE_EVENTS
        assert {d["status"] for d in deliveries} == {"succeeded"}
        breached = next(d for d in deliveries if d["event_type"] == "threshold.breached")
        assert trigger["dedup_key"] == f"modelpulse-{breached['event_id']}"
    assert len(pagerduty.events) == 2 and len(slack.messages) == 2 and len(teams.messages) == 2


def test_a_webhook_slack_removed_is_disabled_and_another_webhook_hears_of_it(
    fan_out_worker, client, organization, create_webhook, publish, history, slack
):
    slack.remove()
    with Receiver() as on_call:
        watcher = create_webhook(on_call.url, ["webhook.disabled"])
        doomed = create_webhook(slack.hook_url, ["drift.detected", "webhook.disabled"], format="slack")
        publish("drift.detected", {"model": "churn"})

        (received,) = wait_until(lambda: on_call.received, what="webhook.disabled at the other webhook")
        event = received.verify(watcher["signing_secret"])
        assert event["type"] == "webhook.disabled"
        assert event["data"] | {"disabled_at": None} == {
            "webhook_id": doomed["id"],
            "name": doomed["name"],
            "format": "slack",
            "url": doomed["url"],
            "reason": "no_service",
            "detail": "Slack answered 404 no_service: the incoming webhook was removed",
            "disabled_at": None,
        }
    stored = client.get(f"/organizations/{organization.id}/webhooks/{doomed['id']}", headers=organization.headers)
    assert stored.get_json()["enabled"] is False
    assert stored.get_json()["disabled_reason"] == "Slack answered 404 no_service: the incoming webhook was removed"
    (delivery,) = history(doomed["id"])  # one attempt, and nothing about itself
    assert delivery["status"] == "failed" and delivery["last_error"] == "HTTP 404: no_service"
    assert slack.refused == [(404, "no_service")]


def _event_ids_in_order(messages: list[dict]) -> list[str]:
    """The event id each Slack message names (in its context block), in the order they arrived."""
    return [re.search(r"evt_\w+", message["blocks"][-1]["elements"][0]["text"]).group(0) for message in messages]


def test_recover_after_an_outage_sends_every_missed_event_once_more_in_order(
    fan_out_worker, flows_on_webhook_database, client, organization, create_webhook, publish, slack
):
    org = f"/organizations/{organization.id}"
    outage_began = utcnow() - timedelta(seconds=1)
    slack.unavailable = True
    hook = create_webhook(slack.hook_url, ["drift.detected"], format="slack")
    sent = [publish("drift.detected", {"model": f"model-{n:03d}"}) for n in range(100)]

    def parked() -> list[dict]:
        items = client.get(
            f"{org}/webhooks/{hook['id']}/history", query_string={"limit": 500}, headers=organization.headers
        ).get_json()["items"]
        # The first attempt and the inline retry failed; the next retry is minutes away.
        return len(items) == 100 and all(d["status"] == "retrying" and d["attempt_count"] == 2 for d in items) and items

    deliveries = wait_until(parked, timeout=120, what="100 deliveries parked for a later retry")
    assert {d["event_id"] for d in deliveries} == set(sent) and slack.messages == []

    slack.unavailable = False
    response = client.post(
        f"{org}/webhooks/{hook['id']}/recover", json={"since": outage_began.isoformat()}, headers=organization.headers
    )
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["deliveries"] == 100 and response.get_json()["flow_run_id"]
    assert response.headers["Location"].endswith(f"/webhooks/{hook['id']}/history")

    wait_until(lambda: len(slack.messages) >= 100, timeout=120, what="the recovered deliveries")
    creation_order = sorted(deliveries, key=lambda d: (datetime.fromisoformat(d["created_at"]), d["id"]))
    assert _event_ids_in_order(slack.messages) == [d["event_id"] for d in creation_order]  # each once, in order

    def settled() -> list[dict]:
        items = client.get(
            f"{org}/webhooks/{hook['id']}/history", query_string={"limit": 500}, headers=organization.headers
        ).get_json()["items"]
        return all(d["status"] == "succeeded" for d in items) and items

    for delivery in wait_until(settled, what="every delivery settled"):
        assert [a["trigger"] for a in delivery["attempts"]] == ["initial", "retry", "recover"]
        assert delivery["attempt_count"] == 3 and delivery["next_attempt_at"] is None
    again = client.post(
        f"{org}/webhooks/{hook['id']}/recover", json={"since": outage_began.isoformat()}, headers=organization.headers
    )
    assert again.status_code == 202 and again.get_json() == {"deliveries": 0, "flow_run_id": None}
    assert len(slack.messages) == 100
