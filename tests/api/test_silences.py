"""Silences over the API: create, list, get, expire; the checks (a 422 names ``matchers.<path>`` as filters'
name ``filter.<path>``, or the time or text field); roles and organizations; /openapi.json; recover's
``statuses``. (What the dispatcher does with them: tests/webhooks/test_silences.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from store.db import session_scope
from store.models import utcnow
from store.organizations import create_api_key
from tests.api.test_webhook_filters import problem_fields, webhook_body

MATCHERS = {"data.model": {"$glob": "fraud-*"}, "data.severity": {"$gte": "error"}}


def later(**delta) -> str:
    return (utcnow() + timedelta(**delta)).isoformat()


def silence_body(**changes) -> dict:
    fields = {
        "matchers": MATCHERS,
        "ends_at": later(hours=2),
        "comment": "fraud models redeploy",
        "created_by": "sre@example.com",
    } | changes
    return {name: value for name, value in fields.items() if value is not None}


def test_create_get_list_and_expire(client, org):
    base = f"/organizations/{org.id}/silences"
    created = client.post(base, json=silence_body(), headers=org.headers)
    assert created.status_code == 201, created.get_json()
    silence = created.get_json()
    assert silence["id"].startswith("sil_") and created.headers["Location"].endswith(f"{base}/{silence['id']}")
    assert silence["matchers"] == MATCHERS and silence["state"] == "active"
    assert silence["comment"] == "fraud models redeploy" and silence["created_by"] == "sre@example.com"
    # starts_at left out: now.
    assert abs(datetime.fromisoformat(silence["starts_at"]) - utcnow()) < timedelta(seconds=30)
    assert client.get(f"{base}/{silence['id']}", headers=org.headers).get_json() == silence

    pending = client.post(base, json=silence_body(starts_at=later(hours=1)), headers=org.headers).get_json()
    assert pending["state"] == "pending"
    listed = client.get(base, headers=org.headers).get_json()
    assert [s["id"] for s in listed["items"]] == [silence["id"], pending["id"]] and listed["next_cursor"] is None
    page = client.get(base, query_string={"limit": 1}, headers=org.headers).get_json()
    assert [s["id"] for s in page["items"]] == [silence["id"]] and page["next_cursor"]

    assert client.delete(f"{base}/{silence['id']}", headers=org.headers).status_code == 204
    expired = client.get(f"{base}/{silence['id']}", headers=org.headers).get_json()
    assert expired["state"] == "expired"
    assert datetime.fromisoformat(expired["ends_at"]) <= utcnow()
    # Expiring again changes nothing.
    assert client.delete(f"{base}/{silence['id']}", headers=org.headers).status_code == 204
    assert client.get(f"{base}/{silence['id']}", headers=org.headers).get_json()["ends_at"] == expired["ends_at"]
    # A pending silence expired never begins.
    client.delete(f"{base}/{pending['id']}", headers=org.headers)
    never = client.get(f"{base}/{pending['id']}", headers=org.headers).get_json()
    assert never["state"] == "expired" and never["starts_at"] == never["ends_at"]

    for state, ids in (("expired", [silence["id"], pending["id"]]), ("active", []), ("pending", [])):
        items = client.get(base, query_string={"state": state}, headers=org.headers).get_json()["items"]
        assert [s["id"] for s in items] == ids, state


def test_a_start_already_past_is_now(client, org):
    response = client.post(
        f"/organizations/{org.id}/silences", json=silence_body(starts_at=later(days=-3)), headers=org.headers
    )
    assert response.status_code == 201, response.get_json()
    assert utcnow() - datetime.fromisoformat(response.get_json()["starts_at"]) < timedelta(seconds=30)


def test_a_time_zone_other_than_utc_is_kept_as_the_same_moment(client, org):
    ends = (utcnow() + timedelta(hours=3)).astimezone(UTC).replace(microsecond=0)
    in_new_york = ends.astimezone(timezone(timedelta(hours=-5))).isoformat()
    response = client.post(
        f"/organizations/{org.id}/silences", json=silence_body(ends_at=in_new_york), headers=org.headers
    )
    assert response.status_code == 201, response.get_json()
    assert datetime.fromisoformat(response.get_json()["ends_at"]) == ends


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        # The matchers: the filters' checks against the catalog, located as filters' are (filter.<path>).
        ({"matchers": {"data.modle": "fraud"}}, ["matchers.data.modle"]),
        ({"matchers": {"data.severity": "fatal"}}, ["matchers.data.severity"]),
        ({"matchers": {"data.model": {"$gt": 3}}}, ["matchers.data.model"]),
        ({"matchers": {"$or": [{"data.model": "a"}, {"data.model": {"$glob": "[a"}}]}}, ["matchers.$or[1].data.model"]),
        ({"matchers": {"severity": "error"}}, ["matchers.severity"]),
        # Pinned to model.registered, which has no data.value: checked against that type only.
        ({"matchers": {"type": "model.registered", "data.value": {"$gt": 1}}}, ["matchers.data.value"]),
        # Operational events are never silenced: not a type a silence can name.
        ({"matchers": {"type": "webhook.disabled"}}, ["matchers.type"]),
        ({"matchers": {}}, ["matchers"]),
        ({"matchers": None}, ["matchers"]),
        ({"matchers": ["data.model"]}, ["matchers"]),
        ({"matchers": {f"data.x{i}": {"$glob": "*"} for i in range(800)}}, ["matchers"]),  # over 16 KiB
        # The window.
        ({"ends_at": later(minutes=-1)}, ["ends_at"]),
        ({"ends_at": None}, ["ends_at"]),
        ({"starts_at": later(hours=3), "ends_at": later(hours=2)}, ["ends_at"]),
        ({"ends_at": "2099-01-01T00:00:00"}, ["ends_at"]),  # no time zone
        ({"starts_at": "2099-01-01T00:00:00", "ends_at": "2099-01-02T00:00:00Z"}, ["starts_at"]),
        ({"ends_at": "tomorrow"}, ["ends_at"]),
        # Who and why.
        ({"comment": ""}, ["comment"]),
        ({"comment": "x" * 1001}, ["comment"]),
        ({"comment": "   "}, ["comment"]),
        ({"created_by": None}, ["created_by"]),
        ({"created_by": "a" * 201}, ["created_by"]),
        ({"created_by": " padded"}, ["created_by"]),
        ({"id": "sil_mine"}, ["id"]),
    ],
)
def test_an_invalid_silence_is_a_422_naming_the_field(client, org, changes, fields):
    response = client.post(f"/organizations/{org.id}/silences", json=silence_body(**changes), headers=org.headers)
    assert problem_fields(response) == fields


def test_matchers_take_the_type_and_the_limits(client, org):
    base = f"/organizations/{org.id}/silences"
    for matchers in (
        {"type": {"$in": ["drift.detected", "drift.resolved"]}, "data.features.feature": "amount"},
        {"project_id": None},
        {"$or": [{"data.model": "churn"}, {"data.value": {"$gt": 1000}}]},
        {"type": "model.registered", "data.integration_type": "mlflow"},
    ):
        response = client.post(base, json=silence_body(matchers=matchers), headers=org.headers)
        assert response.status_code == 201, (matchers, response.get_json())
        assert response.get_json()["matchers"] == matchers
    longest = silence_body(comment="c" * 1000, created_by="b" * 200, ends_at="9999-12-30T00:00:00Z")
    assert client.post(base, json=longest, headers=org.headers).status_code == 201


def test_roles_and_other_organizations(client, org, database_url):
    base = f"/organizations/{org.id}/silences"
    silence = client.post(base, json=silence_body(), headers=org.headers).get_json()
    with session_scope(database_url) as session:
        viewer = {"Authorization": f"Bearer {create_api_key(session, org.id, role='viewer')}"}
        publisher = {"Authorization": f"Bearer {create_api_key(session, org.id, role='publisher')}"}
        stranger = {"Authorization": f"Bearer {create_api_key(session, 'someone-else')}"}
    # A viewer reads; only an admin creates and expires.
    assert client.get(base, headers=viewer).status_code == 200
    assert client.get(f"{base}/{silence['id']}", headers=viewer).status_code == 200
    for headers in (viewer, publisher):
        assert client.post(base, json=silence_body(), headers=headers).status_code == 403
        assert client.delete(f"{base}/{silence['id']}", headers=headers).status_code == 403
    assert client.get(f"{base}/{silence['id']}", headers=org.headers).get_json()["state"] == "active"
    # Another organization's key: 404 on this organization's paths and on its silence under its own.
    assert client.get(base, headers=stranger).status_code == 404
    assert client.get(f"/organizations/someone-else/silences/{silence['id']}", headers=stranger).status_code == 404
    assert client.delete(f"/organizations/someone-else/silences/{silence['id']}", headers=stranger).status_code == 404
    assert client.get(f"{base}/sil_missing", headers=org.headers).status_code == 404


@pytest.mark.parametrize(
    ("statuses", "fields"),
    [(["succeeded"], ["statuses[0]"]), (["suppressed"], ["statuses[0]"]), ([], ["statuses"]), ("failed", ["statuses"])],
)
def test_recover_statuses_are_checked(client, org, statuses, fields):
    hook = client.post(f"/organizations/{org.id}/webhooks", json=webhook_body(), headers=org.headers).get_json()
    response = client.post(
        f"/organizations/{org.id}/webhooks/{hook['id']}/recover",
        json={"since": later(hours=-1), "statuses": statuses},
        headers=org.headers,
    )
    assert problem_fields(response) == fields


def test_openapi_describes_silences_and_silenced_deliveries(client):
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/organizations/{organization_id}/silences"])
    assert {"get", "delete"} <= set(paths["/organizations/{organization_id}/silences/{silence_id}"])
    schemas = document["components"]["schemas"]
    assert {"matchers", "starts_at", "ends_at", "comment", "created_by"} <= set(schemas["SilenceIn"]["properties"])
    assert set(schemas["SilenceIn"]["required"]) == {"matchers", "ends_at", "comment", "created_by"}
    assert "state" in schemas["SilenceOut"]["properties"]
    assert "silence_id" in schemas["DeliveryOut"]["properties"]
    assert "silenced" in str(schemas["DeliveryOut"]["properties"]["status"])
    assert "silenced" in str(schemas["RecoverIn"]["properties"]["statuses"])
