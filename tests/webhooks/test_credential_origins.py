"""A webhook PUT that moves the URL to another origin must send every header value (and a
pagerduty routing key) again; until it does, the new origin gets nothing. The signing secret stays."""

from __future__ import annotations

from tests.webhooks.receivers import Receiver

MASK = "********"
OLD_SECRET = "old-header-secret-5e1f"


def _put(client, organization, hook_id: str, **fields):
    body = {"name": "moved", "events": ["drift.detected"], **fields}
    return client.put(f"/organizations/{organization.id}/webhooks/{hook_id}", json=body, headers=organization.headers)


def _test(client, organization, hook_id: str):
    return client.post(f"/organizations/{organization.id}/webhooks/{hook_id}/test", headers=organization.headers)


def _fields(response) -> list[str]:
    return [e["field"] for e in response.get_json()["errors"]]


def test_no_request_reaches_a_new_origin_with_an_old_secret(client, organization, create_webhook):
    with Receiver() as old, Receiver() as new:
        hook = create_webhook(old.url, headers={"X-Api-Token": OLD_SECRET, "X-Team": "ml"})
        omitted = _put(client, organization, hook["id"], url=new.url)
        masked = _put(client, organization, hook["id"], url=new.url, headers={"X-Api-Token": MASK, "X-Team": "ml2"})
        still_old = _test(client, organization, hook["id"])
        assert new.received == [], "nothing reached the new origin"

        moved = _put(client, organization, hook["id"], url=new.url, headers={"X-Api-Token": "new-9c2d", "X-Team": "ml"})
        tested = _test(client, organization, hook["id"])

    assert omitted.status_code == masked.status_code == 422
    assert _fields(omitted) == ["headers.X-Api-Token", "headers.X-Team"]
    assert _fields(masked) == ["headers.X-Api-Token"]
    assert still_old.get_json()["status"] == "succeeded" and len(old.received) == 1
    assert moved.status_code == 200, moved.get_json()
    assert tested.get_json()["status"] == "succeeded", tested.get_json()
    (received,) = new.received
    assert received.headers["x-api-token"] == "new-9c2d"
    assert all(OLD_SECRET not in str(r.headers) for r in new.received)
    received.verify(hook["signing_secret"])  # ModelPulse's own signing secret stays


def test_a_header_left_out_of_a_move_is_dropped_not_kept(client, organization, create_webhook):
    with Receiver() as old, Receiver() as new:
        hook = create_webhook(old.url, headers={"X-Api-Token": OLD_SECRET})
        response = _put(client, organization, hook["id"], url=new.url, headers={"X-Team": "ml"})
        _test(client, organization, hook["id"])
    assert response.status_code == 200 and response.get_json()["headers"] == {"X-Team": MASK}
    assert "x-api-token" not in new.received[0].headers


def test_the_same_origin_keeps_omitted_and_masked_headers(client, organization, create_webhook):
    with Receiver() as receiver:
        hook = create_webhook(receiver.url, headers={"X-Api-Token": OLD_SECRET})
        other_path = receiver.url.replace("/hook", "/other-path")
        omitted = _put(client, organization, hook["id"], url=other_path)
        masked = _put(client, organization, hook["id"], url=receiver.url, headers={"X-Api-Token": MASK})
        _test(client, organization, hook["id"])
    assert omitted.status_code == masked.status_code == 200
    assert receiver.received[-1].headers["x-api-token"] == OLD_SECRET


def test_a_pagerduty_routing_key_must_be_resent_when_the_url_moves(client, organization):
    created = client.post(
        f"/organizations/{organization.id}/webhooks",
        json={"name": "pager", "format": "pagerduty", "events": ["drift.detected"],
              "credentials": {"routing_key": "R" * 32}},
        headers=organization.headers,
    )  # fmt: skip
    with Receiver() as new:
        moved = _put(client, organization, created.get_json()["id"], format="pagerduty", url=new.url,
                     credentials={"routing_key": MASK})  # fmt: skip
        kept = _put(client, organization, created.get_json()["id"], format="pagerduty")
    assert moved.status_code == 422 and _fields(moved) == ["credentials.routing_key"]
    assert kept.status_code == 200 and new.received == []


def test_a_new_slack_url_is_its_own_credential_but_headers_must_follow(client, organization, create_webhook):
    with Receiver() as old, Receiver() as new:
        plain = create_webhook(old.url + "/T0/B0/secret", format="slack")
        with_header = create_webhook(old.url + "/T0/B0/secret", format="slack", headers={"X-Api-Token": OLD_SECRET})
        moved = _put(client, organization, plain["id"], format="slack", url=new.url + "/T1/B1/new")
        refused = _put(client, organization, with_header["id"], format="slack", url=new.url + "/T1/B1/new")
    assert moved.status_code == 200, moved.get_json()
    assert refused.status_code == 422 and _fields(refused) == ["headers.X-Api-Token"]
    assert new.received == []
