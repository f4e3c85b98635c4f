"""A webhook's ``throttle`` over the API: kept and shown on create and PUT in every format, checked (a 422 names
``throttle.<field>``), described in /openapi.json; a delivery's ``repeats`` in the history schema."""

from __future__ import annotations

import pytest

from tests.api.test_webhook_filters import FORMATS, problem_fields, webhook_body

THROTTLE = {"group_by": ["data.model", "data.feature"], "cooldown_seconds": 3600}


@pytest.mark.parametrize("format_", list(FORMATS))
def test_a_throttle_is_kept_on_create_and_put_in_every_format(client, org, format_):
    base = f"/organizations/{org.id}/webhooks"
    created = client.post(base, json=webhook_body(format_, throttle=THROTTLE), headers=org.headers)
    assert created.status_code == 201, created.get_json()
    hook = created.get_json()
    assert hook["throttle"] == THROTTLE
    assert client.get(f"{base}/{hook['id']}", headers=org.headers).get_json()["throttle"] == THROTTLE

    shorter = {"group_by": ["data.model"], "cooldown_seconds": 60}
    put = client.put(f"{base}/{hook['id']}", json=webhook_body(format_, throttle=shorter), headers=org.headers)
    assert put.status_code == 200 and put.get_json()["throttle"] == shorter, put.get_json()
    cleared = client.put(f"{base}/{hook['id']}", json=webhook_body(format_), headers=org.headers)
    assert cleared.status_code == 200 and cleared.get_json()["throttle"] is None


@pytest.mark.parametrize(
    ("events", "throttle", "fields"),
    [
        (None, {"group_by": [], "cooldown_seconds": 60}, ["throttle.group_by"]),
        (None, {"group_by": [f"data.model{i}" for i in range(6)], "cooldown_seconds": 60}, ["throttle.group_by"]),
        (None, {"group_by": ["data.modle"], "cooldown_seconds": 60}, ["throttle.group_by[0]"]),
        (None, {"group_by": ["data.model", "severity"], "cooldown_seconds": 60}, ["throttle.group_by[1]"]),
        (None, {"group_by": ["data.model", "data.model"], "cooldown_seconds": 60}, ["throttle.group_by[1]"]),
        # data.value is threshold.*'s, not model.registered's.
        (["model.registered"], {"group_by": ["data.value"], "cooldown_seconds": 60}, ["throttle.group_by[0]"]),
        (None, {"group_by": ["data.model"], "cooldown_seconds": 0}, ["throttle.cooldown_seconds"]),
        (None, {"group_by": ["data.model"], "cooldown_seconds": 604801}, ["throttle.cooldown_seconds"]),
        (None, {"group_by": ["data.model"], "cooldown_seconds": "3600"}, ["throttle.cooldown_seconds"]),
        (None, {"group_by": ["data.model"], "cooldown_seconds": 1.5}, ["throttle.cooldown_seconds"]),
        (None, {"group_by": ["data.model"]}, ["throttle.cooldown_seconds"]),
        (None, {"group_by": ["data.model"], "cooldown_seconds": 60, "per": "x"}, ["throttle.per"]),
    ],
)
def test_an_invalid_throttle_is_a_422_naming_the_field(client, org, events, throttle, fields):
    changes = {"throttle": throttle} | ({"events": events} if events else {})
    response = client.post(f"/organizations/{org.id}/webhooks", json=webhook_body(**changes), headers=org.headers)
    assert problem_fields(response) == fields


def test_the_limits_are_accepted(client, org):
    throttle = {
        "group_by": ["data.model", "data.feature", "data.metric", "project_id", "type"],
        "cooldown_seconds": 604800,
    }
    response = client.post(
        f"/organizations/{org.id}/webhooks", json=webhook_body(throttle=throttle), headers=org.headers
    )
    assert response.status_code == 201, response.get_json()
    one = {"group_by": ["data.model"], "cooldown_seconds": 1}
    response = client.post(
        f"/organizations/{org.id}/webhooks", json=webhook_body(name="other", throttle=one), headers=org.headers
    )
    assert response.status_code == 201, response.get_json()


def test_openapi_describes_the_throttle_and_suppressed_deliveries(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert "throttle" in schemas["WebhookIn"]["properties"] and "throttle" in schemas["WebhookOut"]["properties"]
    throttle = schemas["Throttle"]["properties"]
    assert throttle["cooldown_seconds"]["maximum"] == 604800 and throttle["group_by"]["maxItems"] == 5
    assert "repeats" in schemas["DeliveryOut"]["properties"]
    assert "suppressed" in str(schemas["DeliveryOut"]["properties"]["status"])
