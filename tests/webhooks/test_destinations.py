"""Slack, Teams and PagerDuty webhooks through the API and the real fan-out (in process, on a database of
this test's own): secrets kept write-only, each format's answers acted on, operational events.

Like test_edge_receivers, these fan out in-process on their own database, so the session's webhook
dispatcher never races them for an event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select

from store import db as store_db
from store.models import Event, Webhook, utcnow
from store.settings import get_settings
from tasks.webhooks import fanout
from tasks.webhooks.settings import get_webhook_settings
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.slack import SlackFake
from tests.fakes.teams import TeamsFake
from tests.webhooks.receivers import Receiver, Reply

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
UNKNOWN_KEY = "UNKN0WNKEY0123456789abcdefABCDEF"


@pytest.fixture
def database_url(sqlite_url) -> str:
    """A database of this test's own (see the module docstring)."""
    return sqlite_url


@pytest.fixture(autouse=True)
def in_process(webhook_env, monkeypatch, database_url) -> Iterator[None]:
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", database_url)
    # One quick retry, then the schedule is spent: exhaustion within a second.
    monkeypatch.setenv("MODELPULSE_WEBHOOK_RETRY_SCHEDULE", "[0.2]")
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()
    store_db.forget_engines()
    yield
    store_db.forget_engines()


def fan_out(database_url: str, *event_ids: str) -> fanout.SendSummary:
    return asyncio.run(fanout.fan_out_events(list(event_ids), database_url=database_url))


def fan_out_outbox(database_url: str) -> fanout.SendSummary:
    """Fan out whatever the outbox holds (the operational events the last fan-out wrote)."""
    return fan_out(database_url, *fanout.undispatched_event_ids(100, database_url))


def stored_rows(database_url: str) -> str:
    """Every webhook row as text: what the database would give away."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(Webhook.__table__)).all()
    engine.dispose()
    return repr(rows)


def events_of(database_url: str, type_: str) -> list:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(Event.data).where(Event.type == type_).order_by(Event.id)).scalars().all()
    engine.dispose()
    return list(rows)


def test_a_slack_url_is_write_only_and_a_put_keeps_it(client, organization, create_webhook, database_url):
    url = f"/organizations/{organization.id}/webhooks"
    with SlackFake() as slack:
        hook = create_webhook(slack.hook_url, ["drift.detected"], format="slack")
        masked = f"{slack.url}/********"
        assert (hook["format"], hook["url"]) == ("slack", masked)
        for body in (
            {"name": "renamed", "events": ["drift.detected"], "format": "slack"},  # URL left out
            {"name": "renamed", "events": ["drift.detected"], "format": "slack", "url": masked},  # sent masked
        ):
            response = client.put(f"{url}/{hook['id']}", json=body, headers=organization.headers)
            assert response.status_code == 200, response.get_json()
            assert response.get_json()["url"] == masked
        listed = client.get(url, headers=organization.headers)
        test = client.post(f"{url}/{hook['id']}/test", headers=organization.headers)
        assert test.status_code == 201 and test.get_json()["status"] == "succeeded", test.get_json()
        (message,) = slack.messages  # the stored URL still reaches the channel
        assert message["text"].startswith("[INFO] renamed: Test event: This is a test event from ModelPulse.")
        assert "webhook-signature" not in test.get_json()["attempts"][0]["request_headers"]
    secret_path = SlackFake.PATH
    for text in (
        json.dumps(hook),
        listed.get_data(as_text=True),
        test.get_data(as_text=True),
        stored_rows(database_url),
    ):
        assert secret_path not in text


def test_a_routing_key_is_write_only_and_the_url_defaults_to_pagerduty(
    client, organization, create_webhook, database_url
):
    url = f"/organizations/{organization.id}/webhooks"
    body = {
        "name": "pager",
        "format": "pagerduty",
        "events": ["threshold.breached"],
        "credentials": {"routing_key": ROUTING_KEY},
    }
    created = client.post(url, json=body, headers=organization.headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["url"] == "https://events.pagerduty.com/v2/enqueue"
    assert created.get_json()["credentials"] == {"routing_key": "********"}
    with PagerDutyFake(ROUTING_KEY) as pagerduty:
        kept = {
            "name": "pager",
            "format": "pagerduty",
            "events": ["threshold.breached"],
            "url": pagerduty.events_url,  # another origin: the routing key is sent again
            "credentials": {"routing_key": ROUTING_KEY},
            "config": {"severity": "warning"},
        }
        replaced = client.put(f"{url}/{created.get_json()['id']}", json=kept, headers=organization.headers)
        assert replaced.status_code == 200, replaced.get_json()
        assert replaced.get_json()["config"] == {"severity": "warning"}
        test = client.post(f"{url}/{created.get_json()['id']}/test", headers=organization.headers)
        assert test.get_json()["status"] == "succeeded", test.get_json()
        (sent,) = pagerduty.events
    assert sent["routing_key"] == ROUTING_KEY and sent["payload"]["severity"] == "warning"
    for text in (
        created.get_data(as_text=True),
        replaced.get_data(as_text=True),
        test.get_data(as_text=True),
        stored_rows(database_url),
    ):
        assert ROUTING_KEY not in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "slack"}, "url"),
        ({"format": "teams", "url": "http://127.0.0.1:9/********"}, "url"),
        ({"format": "standard", "url": "http://127.0.0.1:9/********"}, "url"),
        ({"format": "pagerduty"}, "credentials.routing_key"),
        ({"format": "pagerduty", "credentials": {"routing_key": "short"}}, "credentials.routing_key"),
        (
            {"format": "slack", "url": "http://127.0.0.1:9/s", "credentials": {"routing_key": ROUTING_KEY}},
            "credentials.routing_key",
        ),
        ({"format": "email", "url": "http://127.0.0.1:9/s"}, "format"),
        ({"format": "slack", "url": "http://127.0.0.1:9/s", "config": {"severity": "panic"}}, "config.severity"),
        ({"url": "http://127.0.0.1:9/s", "events": ["webhook.test"]}, "events[0]"),
    ],
)
def test_format_settings_are_validated_naming_the_field(client, organization, body, field):
    response = client.post(
        f"/organizations/{organization.id}/webhooks",
        json={"name": "hook", "events": ["drift.detected"]} | body,
        headers=organization.headers,
    )
    assert response.status_code == 422, response.get_json()
    assert [error["field"] for error in response.get_json()["errors"]] == [field]


def test_pagerduty_rejecting_an_event_is_recorded_and_not_retried(create_webhook, publish, history, database_url):
    with PagerDutyFake(ROUTING_KEY) as pagerduty:
        hook = create_webhook(
            pagerduty.events_url, ["drift.detected"], format="pagerduty", credentials={"routing_key": UNKNOWN_KEY}
        )
        fan_out(database_url, publish("drift.detected", {"model": "churn"}))
        assert pagerduty.events == [] and len(pagerduty.requests) == 1
    (delivery,) = history(hook["id"])
    assert delivery["status"] == "failed" and delivery["attempt_count"] == 1
    assert delivery["last_error"] == "HTTP 400: Event object is invalid: Invalid routing key"
    assert UNKNOWN_KEY not in json.dumps(delivery)
    assert events_of(database_url, "delivery.exhausted") == []  # rejected, not exhausted


def test_pagerduty_throttling_and_outages_are_retried(create_webhook, publish, history, database_url, monkeypatch):
    monkeypatch.setenv("MODELPULSE_WEBHOOK_RETRY_SCHEDULE", "[0.2, 0.2]")
    get_webhook_settings.cache_clear()
    with PagerDutyFake(ROUTING_KEY) as pagerduty, TeamsFake() as teams:
        pagerduty.script(429, 503)
        teams.script(503)
        paged = create_webhook(
            pagerduty.events_url, ["drift.detected"], format="pagerduty", credentials={"routing_key": ROUTING_KEY}
        )
        posted = create_webhook(teams.workflow_url, ["drift.detected"], format="teams")
        fan_out(database_url, publish("drift.detected", {"model": "churn"}))
        assert len(pagerduty.events) == 1 and len(teams.messages) == 1
    (delivery,) = history(paged["id"])
    assert delivery["status"] == "succeeded"
    assert [a["response_status"] for a in delivery["attempts"]] == [429, 503, 202]
    (delivery,) = history(posted["id"])
    assert [a["response_status"] for a in delivery["attempts"]] == [503, 202]


def test_a_teams_workflow_deleted_disables_its_webhook(client, organization, create_webhook, publish, database_url):
    with TeamsFake() as teams:
        teams.delete()
        hook = create_webhook(teams.workflow_url, ["drift.detected"], format="teams")
        fan_out(database_url, publish("drift.detected", {"model": "churn"}))
    stored = client.get(f"/organizations/{organization.id}/webhooks/{hook['id']}", headers=organization.headers)
    assert stored.get_json()["enabled"] is False
    [disabled] = events_of(database_url, "webhook.disabled")
    assert (disabled["webhook_id"], disabled["reason"]) == (hook["id"], "workflow_not_found")
    assert "s3cr3tSignature" not in json.dumps(disabled)


def test_an_exhausted_delivery_is_reported_to_the_other_webhooks_never_to_its_own(
    create_webhook, publish, history, database_url
):
    with Receiver(Reply(503)) as failing, Receiver() as on_call, Receiver(Reply(503)) as also_down:
        down = create_webhook(failing.url, ["drift.detected", "delivery.exhausted"])
        watcher = create_webhook(on_call.url, ["delivery.exhausted"])
        create_webhook(also_down.url, ["delivery.exhausted"])
        event_id = publish("drift.detected", {"model": "churn"})
        fan_out(database_url, event_id)
        assert len(failing.received) == 2  # the first attempt and the one retry of the schedule
        [exhausted] = events_of(database_url, "delivery.exhausted")
        (delivery,) = history(down["id"])
        assert exhausted == {
            "webhook_id": down["id"],
            "webhook_name": down["name"],
            "delivery_id": delivery["id"],
            "event_id": event_id,
            "event_type": "drift.detected",
            "attempts": 2,
            "last_error": "HTTP 503",
        }
        fan_out_outbox(database_url)
        (received,) = on_call.received
        assert received.verify(watcher["signing_secret"])["data"]["webhook_id"] == down["id"]
        assert len(failing.received) == 2  # never told about itself
        assert len(also_down.received) == 2  # its delivery of the report exhausted too ...
    fan_out_outbox(database_url)
    assert len(events_of(database_url, "delivery.exhausted")) == 1  # ... and that is not reported again


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"since": "2026-11-02T10:00:00Z", "until": "2026-11-02T09:00:00Z"}, 422, "until"),
        ({"until": "2026-11-02T09:00:00Z"}, 422, "since"),
        ({"since": "yesterday"}, 422, "since"),
        ({"since": "2026-11-02T10:00:00Z", "limit": 5}, 422, "limit"),
    ],
)
def test_recover_validates_its_window(client, organization, create_webhook, body, status, field):
    hook = create_webhook("http://127.0.0.1:9/hook")
    response = client.post(
        f"/organizations/{organization.id}/webhooks/{hook['id']}/recover", json=body, headers=organization.headers
    )
    assert response.status_code == status
    assert [error["field"] for error in response.get_json()["errors"]] == [field]


def test_recover_refuses_a_disabled_webhook_and_other_organizations(client, organization, create_webhook, make_key):
    hook = create_webhook("http://127.0.0.1:9/hook", enabled=False)
    path = f"/organizations/{organization.id}/webhooks/{hook['id']}/recover"
    window = {"since": (utcnow() - timedelta(days=1)).isoformat()}
    refused = client.post(path, json=window, headers=organization.headers)
    assert refused.status_code == 409
    assert "disabled" in refused.get_json()["detail"] and '"enabled": true' in refused.get_json()["detail"]
    other = {"Authorization": f"Bearer {make_key('someone-else')}"}
    assert client.post(path, json=window, headers=other).status_code == 404
    assert (
        client.post(
            f"/organizations/someone-else/webhooks/{hook['id']}/recover", json=window, headers=other
        ).status_code
        == 404
    )
