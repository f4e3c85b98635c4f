"""Redeliver, test events, secret rotation, event intake validation, SSRF at the API, auto-disable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from store.db import session_scope
from store.ids import new_id
from store.models import Delivery, DeliveryAttempt, Event, utcnow
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver, Reply


def _path(organization, webhook_id: str, suffix: str = "") -> str:
    return f"/organizations/{organization.id}/webhooks/{webhook_id}{suffix}"


def test_redeliver_sends_a_new_attempt_with_the_same_webhook_id(
    fan_out_worker, client, organization, create_webhook, publish, history
):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url)
        event_id = publish()
        (delivery,) = wait_until(lambda: [d for d in history(webhook["id"]) if d["status"] == "succeeded"])

        response = client.post(
            _path(organization, webhook["id"], f"/history/{delivery['id']}/redeliver"), headers=organization.headers
        )
    assert response.status_code == 200, response.get_json()
    redelivered = response.get_json()
    assert [a["trigger"] for a in redelivered["attempts"]] == ["initial", "redeliver"]
    assert redelivered["status"] == "succeeded" and redelivered["attempt_count"] == 2
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]
    receiver.received[1].verify(webhook["signing_secret"])


def test_test_event_goes_to_this_webhook_only(client, organization, create_webhook, history):
    with Receiver() as receiver, Receiver() as bystander:
        webhook = create_webhook(receiver.url)
        create_webhook(bystander.url)
        response = client.post(_path(organization, webhook["id"], "/test"), headers=organization.headers)
    assert response.status_code == 201, response.get_json()
    delivery = response.get_json()
    assert delivery["event_type"] == "webhook.test" and delivery["status"] == "succeeded"
    assert response.headers["Location"].endswith(f"/history/{delivery['id']}")
    (received,) = receiver.received
    assert received.verify(webhook["signing_secret"])["type"] == "webhook.test"
    assert bystander.received == []
    assert [d["id"] for d in history(webhook["id"], event_type="webhook.test")] == [delivery["id"]]
    assert history(webhook["id"], event_type="drift.detected") == []
    assert history(webhook["id"], status="failed") == []


def test_rotation_signs_with_both_secrets_during_the_overlap(client, organization, create_webhook):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url)
        rotated = client.post(_path(organization, webhook["id"], "/rotate-secret"), headers=organization.headers)
        assert rotated.status_code == 200, rotated.get_json()
        new_secret = rotated.get_json()["signing_secret"]
        assert new_secret.startswith("whsec_") and new_secret != webhook["signing_secret"]

        assert client.post(_path(organization, webhook["id"], "/test"), headers=organization.headers).status_code == 201
    (received,) = receiver.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert received.verify(new_secret)["type"] == "webhook.test"
    assert received.verify(webhook["signing_secret"])["type"] == "webhook.test"
    shown = client.get(_path(organization, webhook["id"]), headers=organization.headers).get_data(as_text=True)
    assert new_secret not in shown and webhook["signing_secret"] not in shown


def test_unknown_delivery_and_other_organizations_are_404(client, organization, make_key, create_webhook):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url)
    missing = client.post(
        _path(organization, webhook["id"], "/history/dlv_nope/redeliver"), headers=organization.headers
    )
    assert missing.status_code == 404
    other = {"Authorization": f"Bearer {make_key('someone-else')}"}
    for suffix in ("/history", "/test", "/rotate-secret"):
        method = client.get if suffix == "/history" else client.post
        assert method(f"/organizations/someone-else/webhooks/{webhook['id']}{suffix}", headers=other).status_code == 404
    event = {"type": "drift.detected"}
    assert client.post(f"/organizations/{organization.id}/events", json=event, headers=other).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "drift.happened", "data": {}}, "type"),
        ({"type": "drift.detected", "data": []}, "data"),
        ({"type": "drift.detected", "project_id": "no spaces"}, "project_id"),
    ],
)
def test_event_intake_rejects_bad_input_naming_the_field(client, organization, body, field):
    response = client.post(f"/organizations/{organization.id}/events", json=body, headers=organization.headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://localhost:8080/hook", "loopback"),
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fd00::5]/hook", "private"),
        ("http://10.0.0.8/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://100.100.1.1/hook", "carrier-grade NAT"),
    ],
)
def test_webhook_targets_on_internal_networks_are_refused(deny_private, client, organization, url, why):
    body = {"name": "internal", "url": url, "events": ["drift.detected"]}
    response = client.post(f"/organizations/{organization.id}/webhooks", json=body, headers=organization.headers)
    assert response.status_code == 422
    (error,) = response.get_json()["errors"]
    assert error["field"] == "url" and why in error["message"]


def test_update_to_an_internal_target_is_refused(client, organization, create_webhook, monkeypatch):
    webhook = create_webhook("http://93.184.215.14/hook")
    monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")
    from store.settings import get_settings

    get_settings.cache_clear()
    body = {"name": webhook["name"], "url": "http://169.254.169.254/", "events": ["drift.detected"]}
    response = client.put(_path(organization, webhook["id"]), json=body, headers=organization.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "url"


def test_delivery_to_a_target_that_now_reaches_loopback_is_refused(client, organization, create_webhook, monkeypatch):
    """A saved URL that reaches loopback at send time (DNS rebinding) is refused and not retried."""
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url.replace("127.0.0.1", "localhost"))
        monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")
        from store.settings import get_settings

        get_settings.cache_clear()
        response = client.post(_path(organization, webhook["id"], "/test"), headers=organization.headers)
    delivery = response.get_json()
    assert delivery["status"] == "failed"
    (attempt,) = delivery["attempts"]
    assert attempt["response_status"] is None and "loopback" in attempt["error"]
    assert receiver.received == []


def test_a_webhook_failing_for_days_is_disabled(fan_out_worker, client, organization, create_webhook, publish, history):
    with Receiver(Reply(500)) as receiver:
        webhook = create_webhook(receiver.url)
        # Six days of failures already on record (written as the history would hold them).
        long_ago = utcnow() - timedelta(days=6)
        with session_scope() as session:
            event = Event(
                id=new_id("evt"), organization_id=organization.id, type="drift.detected", data={},
                timestamp=long_ago, dispatched_at=long_ago,
            )
            session.add(event)
            session.flush()
            delivery = Delivery(
                id=new_id("dlv"), organization_id=organization.id, webhook_id=webhook["id"], event_id=event.id,
                event_type=event.type, status="failed", attempt_count=8,
            )
            session.add(delivery)
            session.flush()
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id, attempted_at=long_ago, trigger="initial", request_headers={},
                    response_status=500, duration_ms=3.0, succeeded=False,
                )
            )
        publish()

        def disabled() -> dict | None:
            record = client.get(_path(organization, webhook["id"]), headers=organization.headers).get_json()
            return None if record["enabled"] else record

        record = wait_until(disabled, what="the webhook to be disabled")
    assert "only failed deliveries for 5 days" in record["disabled_reason"]
    newest = history(webhook["id"])[0]
    assert newest["status"] == "failed" and newest["next_attempt_at"] is None
