"""A webhook's ``filter`` over the API: kept and shown on create and PUT in every format, checked against the
subscribed types' catalog entries (a 422 names ``filter.<path>``), described in /openapi.json."""

from __future__ import annotations

import pytest

from store.event_filters import MAX_CONDITIONS
from tests.api.bodies import body

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
FILTER = {
    "data.model": {"$glob": "fraud-*"},
    "data.severity": {"$gte": "error"},
    "$or": [{"project_id": "payments"}, {"data.value": {"$gt": 1000}}],
}
FORMATS = {
    "standard": {},
    "slack": {"format": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXXXXXX"},
    "teams": {"format": "teams", "url": "https://prod-00.westus.logic.azure.com/workflows/abc/invoke?sig=s3cr3t"},
    "pagerduty": {"format": "pagerduty", "url": None, "credentials": {"routing_key": ROUTING_KEY}, "headers": {}},
}


def webhook_body(format_: str = "standard", **changes) -> dict:
    fields = {"events": ["threshold.breached", "threshold.resolved"]} | FORMATS[format_] | changes
    return {name: value for name, value in body("webhooks", **fields).items() if value is not None}


@pytest.mark.parametrize("format_", list(FORMATS))
def test_a_filter_is_kept_on_create_and_put_in_every_format(client, org, format_):
    base = f"/organizations/{org.id}/webhooks"
    created = client.post(base, json=webhook_body(format_, filter=FILTER), headers=org.headers)
    assert created.status_code == 201, created.get_json()
    hook = created.get_json()
    assert hook["filter"] == FILTER
    assert client.get(f"{base}/{hook['id']}", headers=org.headers).get_json()["filter"] == FILTER
    assert [item["filter"] for item in client.get(base, headers=org.headers).get_json()["items"]] == [FILTER]

    narrower = {"data.severity": "critical"}
    put = client.put(f"{base}/{hook['id']}", json=webhook_body(format_, filter=narrower), headers=org.headers)
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["filter"] == narrower
    assert client.get(f"{base}/{hook['id']}", headers=org.headers).get_json()["filter"] == narrower

    # PUT replaces the webhook: a body without a filter removes it.
    cleared = client.put(f"{base}/{hook['id']}", json=webhook_body(format_), headers=org.headers)
    assert cleared.status_code == 200 and cleared.get_json()["filter"] is None


def test_a_webhook_without_a_filter_shows_null(client, org):
    created = client.post(f"/organizations/{org.id}/webhooks", json=webhook_body(), headers=org.headers)
    assert created.status_code == 201 and created.get_json()["filter"] is None


def problem_fields(response) -> list[str]:
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    return [error["field"] for error in response.get_json()["errors"]]


def deep(levels: int) -> dict:
    """A filter nested ``levels`` deep ($or / $and alternately), a condition at the bottom."""
    current: dict = {"data.model": "fraud-eu"}
    for level in range(levels - 1):
        current = {("$or", "$and")[level % 2]: [current]}
    return current


@pytest.mark.parametrize(
    ("events", "filter_", "field", "words"),
    [
        # A path no subscribed type has (data.value is threshold.*'s, not model.registered's).
        (["model.registered"], {"data.value": {"$gt": 1}}, "filter.data.value", "no subscribed event type"),
        (["threshold.breached"], {"data.modle": "fraud"}, "filter.data.modle", "no subscribed event type"),
        (["threshold.breached"], {"severity": "critical"}, "filter.severity", "type, project_id or data.<field>"),
        # An operator on the wrong kind of value.
        (["threshold.breached"], {"data.model": {"$gt": 5}}, "filter.data.model", "$gt: compares numbers"),
        (["threshold.breached"], {"data.value": {"$glob": "8*"}}, "filter.data.value", "$glob: matches strings"),
        (["threshold.breached"], {"data.value": "high"}, "filter.data.value", "never equals numbers"),
        (["threshold.breached"], {"data.severity": {"$gte": "sev1"}}, "filter.data.severity", "severities"),
        (["threshold.breached"], {"data.model": {"$in": "fraud"}}, "filter.data.model", "$in: takes a list"),
        (["threshold.breached"], {"data.model": {"$exists": 1}}, "filter.data.model", "true or false"),
        (["threshold.breached"], {"data.model": {"$like": "f%"}}, "filter.data.model", "unknown operator"),
        (["threshold.breached"], {"type": "drift.detected"}, "filter.type", "none of this path's values"),
        # An invalid glob.
        (["threshold.breached"], {"data.model": {"$glob": "fraud-[eu"}}, "filter.data.model", "never closed"),
        (["threshold.breached"], {"data.model": {"$glob": "fraud]"}}, "filter.data.model", "closes no '['"),
        # Where in a nested filter.
        (["threshold.breached"], {"$or": [{"data.model": "a"}, {"data.nope": 1}]}, "filter.$or[1].data.nope", "no "),
        (["threshold.breached"], {"$or": [{"data.model": "a"}, 5]}, "filter.$or[1]", "non-empty JSON object"),
        (["threshold.breached"], {"$not": {"data.model": "a"}}, "filter.$not", "not allowed here"),
        # The bounds: 50 conditions, 4 levels.
        (
            ["threshold.breached"],
            {"$or": [{"data.value": {"$gt": i}} for i in range(MAX_CONDITIONS + 1)]},
            f"filter.$or[{MAX_CONDITIONS}].data.value",
            "at most 50 conditions",
        ),
        (["threshold.breached"], deep(5), "filter.$and[0].$or[0].$and[0].$or", "at most 4 deep"),
    ],
)
def test_an_invalid_filter_is_a_422_naming_its_path(client, org, events, filter_, field, words):
    base = f"/organizations/{org.id}/webhooks"
    response = client.post(base, json=webhook_body(events=events, filter=filter_), headers=org.headers)
    assert problem_fields(response) == [field]
    assert words in response.get_json()["errors"][0]["message"]
    assert field in response.get_json()["detail"]


def test_the_bounds_themselves_are_accepted(client, org):
    base = f"/organizations/{org.id}/webhooks"
    fifty = {"$or": [{"data.value": {"$gt": i}} for i in range(MAX_CONDITIONS)]}
    for name, filter_ in (("fifty", fifty), ("four-deep", deep(4))):
        response = client.post(base, json=webhook_body(name=name, filter=filter_), headers=org.headers)
        assert response.status_code == 201, response.get_json()


def test_a_put_is_checked_against_its_own_events(client, org):
    base = f"/organizations/{org.id}/webhooks"
    hook = client.post(
        base, json=webhook_body(events=["drift.detected"], filter={"data.features.feature": "age"}), headers=org.headers
    ).get_json()
    # The same filter no longer fits once the webhook subscribes to other types ...
    moved = client.put(
        f"{base}/{hook['id']}",
        json=webhook_body(events=["model.registered"], filter={"data.features.feature": "age"}),
        headers=org.headers,
    )
    assert problem_fields(moved) == ["filter.data.features.feature"]
    # ... and the webhook is as it was.
    assert client.get(f"{base}/{hook['id']}", headers=org.headers).get_json()["events"] == ["drift.detected"]
    # A path of any one subscribed type will do.
    both = client.put(
        f"{base}/{hook['id']}",
        json=webhook_body(events=["model.registered", "drift.detected"], filter={"data.features.feature": "age"}),
        headers=org.headers,
    )
    assert both.status_code == 200, both.get_json()


def test_a_filter_that_is_not_an_object_is_a_422(client, org):
    base = f"/organizations/{org.id}/webhooks"
    for not_an_object in (["data.model"], "data.model = 'x'", 3):
        assert problem_fields(client.post(base, json=webhook_body(filter=not_an_object), headers=org.headers)) == [
            "filter"
        ]


def test_a_filter_is_at_most_16_kib(client, org):
    values = [f"fraud-model-{i:04d}" for i in range(100)]
    large = {"$or": [{"data.model": {"$in": values}} for _ in range(10)]}  # 10 conditions, ~21 KB
    response = client.post(f"/organizations/{org.id}/webhooks", json=webhook_body(filter=large), headers=org.headers)
    assert problem_fields(response) == ["filter"]
    assert "at most 16,384 bytes" in response.get_json()["errors"][0]["message"]


def test_the_filter_is_in_openapi(client):
    document = client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    field = schemas["WebhookIn"]["properties"]["filter"]
    assert "filter.<path>" in field["description"] and "$glob" in field["description"]
    assert field["examples"] == [{"data.model": {"$glob": "fraud-*"}, "data.severity": {"$gte": "error"}}]
    assert "filter" in schemas["WebhookOut"]["properties"]
    assert {"type": "null"} in field["anyOf"] and any(b.get("x-max-bytes") == 16 * 1024 for b in field["anyOf"])
