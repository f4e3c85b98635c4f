"""The event catalog: GET .../event-types, the schema POST .../events enforces, and the OpenAPI
``webhooks`` section that shows every payload (/docs renders it: tests/api/test_docs_browser.py)."""

from __future__ import annotations

import jsonschema
import pytest

from store.event_catalog import BY_TYPE, CATALOG, PUBLISHABLE_TYPES
from store.events import EVENT_TYPES

ALL_TYPES = {
    "drift.detected",
    "drift.resolved",
    "threshold.breached",
    "threshold.resolved",
    "recommendation.created",
    "model.registered",
    "webhook.disabled",
    "delivery.exhausted",
    "webhook.test",
}


def test_the_catalog_lists_every_type_with_its_schema_and_an_example(client, org):
    response = client.get(f"/organizations/{org.id}/event-types", headers=org.headers)
    assert response.status_code == 200
    items = {item["type"]: item for item in response.get_json()["items"]}
    assert set(items) == ALL_TYPES
    for item in items.values():
        assert item["description"] and item["title"]
        jsonschema.Draft202012Validator.check_schema(item["data_schema"])
        jsonschema.validate(item["example"]["data"], item["data_schema"])  # the example fits its own schema
        assert item["example"]["type"] == item["type"]
        assert set(item["example"]) == {"id", "type", "timestamp", "organization_id", "project_id", "data"}
    assert {t for t, item in items.items() if item["subscribable"]} == set(EVENT_TYPES)
    assert {t for t, item in items.items() if item["publishable"]} == set(PUBLISHABLE_TYPES)
    assert {t for t, item in items.items() if item["operational"]} == {"webhook.disabled", "delivery.exhausted"}
    assert items["threshold.resolved"]["data_schema"]["required"] == ["model", "metric", "episode_event_id"]


def test_the_catalog_is_the_organizations_own_path(client, org, make_key):
    assert client.get(f"/organizations/{org.id}/event-types").status_code == 401
    other = {"Authorization": f"Bearer {make_key('someone-else')}"}
    assert client.get(f"/organizations/{org.id}/event-types", headers=other).status_code == 404


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ({"type": "drift.detected", "data": {"psi": 0.4}}, ["data.model"]),
        ({"type": "drift.detected", "data": {"model": 7}}, ["data.model"]),
        (
            {"type": "drift.detected", "data": {"model": "churn", "features": [{"value": 0.3}]}},
            ["data.features[0].feature"],
        ),
        (
            {"type": "drift.detected", "data": {"model": "churn", "window": {"current": {"from": "x"}}}},
            ["data.window.reference", "data.window.current.to"],
        ),
        (
            {
                "type": "threshold.breached",
                "data": {
                    "model": "fraud",
                    "metric": "latency_ms.p95",
                    "operator": "==",
                    "threshold": 250,
                    "value": "high",
                },
            },
            ["data.operator", "data.value"],
        ),
        (
            {"type": "threshold.resolved", "data": {"model": "fraud", "metric": "latency_ms.p95"}},
            ["data.episode_event_id"],
        ),
        (
            {"type": "recommendation.created", "data": {"model": "churn", "kind": "reboot", "reason": "r"}},
            ["data.kind"],
        ),
        ({"type": "model.registered", "data": {"version": "3"}}, ["data.name"]),
        ({"type": "drift.resolved", "data": {"model": "m" * 201, "episode_event_id": None}}, ["data.model"]),
        ({"type": "webhook.disabled", "data": BY_TYPE["webhook.disabled"].example}, ["type"]),
        ({"type": "delivery.exhausted", "data": BY_TYPE["delivery.exhausted"].example}, ["type"]),
        ({"type": "webhook.test", "data": BY_TYPE["webhook.test"].example}, ["type"]),
    ],
)
def test_event_data_is_checked_against_its_types_schema_naming_the_field(client, org, event, fields):
    response = client.post(f"/organizations/{org.id}/events", json=event, headers=org.headers)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert [error["field"] for error in response.get_json()["errors"]] == fields


@pytest.mark.parametrize("entry", [e for e in CATALOG if e.publishable], ids=lambda e: e.type)
def test_each_publishable_types_example_is_accepted_and_extra_fields_are_kept(client, org, entry):
    data = entry.example | {"region": "eu-west-1"}
    response = client.post(
        f"/organizations/{org.id}/events", json={"type": entry.type, "data": data}, headers=org.headers
    )
    assert response.status_code == 202, response.get_json()


def test_openapi_describes_every_payload_under_webhooks_and_introduces_them(client):
    document = client.get("/openapi.json").get_json()
    assert set(document["webhooks"]) == ALL_TYPES
    components = document["components"]["schemas"]
    for event_type, operations in document["webhooks"].items():
        operation = operations["post"]
        content = operation["requestBody"]["content"]["application/json"]
        envelope = components[content["schema"]["$ref"].rsplit("/", 1)[1]]
        assert envelope["properties"]["type"] == {"const": event_type}
        data = components[envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
        assert set(data["required"]) <= set(data["properties"])
        assert content["example"]["type"] == event_type
        assert {p["name"] for p in operation["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        # The example fits the schema, resolved against the document's own components.
        resolver = {"components": {"schemas": components}, **content["schema"]}
        jsonschema.validate(content["example"], resolver)
    events = document["paths"]["/organizations/{organization_id}/event-types"]["get"]
    assert events["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EventTypes")
    recover = document["paths"]["/organizations/{organization_id}/webhooks/{webhook_id}/recover"]["post"]
    assert {"202", "409", "422"} <= set(recover["responses"])
    # The introduction /docs shows above them (tests/api/test_docs_browser.py: every one is rendered there).
    introduction = document["info"]["description"]
    assert "Events sent to webhooks" in introduction and "webhook-signature" in introduction
