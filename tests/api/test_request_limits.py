"""Sizes and standard JSON: body limits, the event data limit, per-field maxima, JSON rules in and out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from api import create_app
from api.endpoint import endpoint
from api.standard_json import MAX_DEPTH, NotStandardJson, parse_standard_json
from store.db import session_scope
from store.organizations import create_api_key
from store.settings import get_settings

MIB = 1024 * 1024


def _event(data: dict) -> dict:
    return {"type": "drift.detected", "data": {"model": "m", **data}}  # `model`: the type's one required field


def _records(count: int) -> list[dict]:
    features = {f"feature_{i}": i * 0.5 for i in range(16)}
    return [{"model": "fraud", "features": features, "prediction": 1} for _ in range(count)]


# --- body limits --------------------------------------------------------------------------------


def test_a_body_past_the_limit_is_413_naming_it(client, org):
    response = client.post(
        f"/organizations/{org.id}/events", json=_event({"blob": "x" * (2 * MIB)}), headers=org.headers
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert "limit of 1,048,576 bytes" in response.get_json()["detail"]


def test_the_limit_is_checked_before_authentication(client):
    response = client.post("/organizations/acme/events", data=b"x" * (MIB + 1), content_type="application/json")
    assert response.status_code == 413


def test_inference_log_batches_have_their_own_larger_limit(client, org):
    batch = json.dumps({"records": _records(6000)}).encode()
    assert MIB < len(batch) < 16 * MIB
    accepted = client.post(
        f"/organizations/{org.id}/inference-logs", data=batch, headers=org.headers, content_type="application/json"
    )
    assert accepted.status_code == 202, accepted.get_json()
    assert accepted.get_json() == {"accepted": 6000}
    too_large = client.post(
        f"/organizations/{org.id}/inference-logs",
        data=b" " * (16 * MIB + 1),
        headers=org.headers,
        content_type="application/json",
    )
    assert too_large.status_code == 413
    assert "limit of 16,777,216 bytes" in too_large.get_json()["detail"]


def test_the_limits_are_settings_and_are_documented(monkeypatch, sqlite_url, prefect_server):
    monkeypatch.setenv("MODELPULSE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("MODELPULSE_MAX_INFERENCE_LOG_BODY_BYTES", "4096")
    get_settings.cache_clear()
    try:
        app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url})
    finally:
        get_settings.cache_clear()
    with session_scope(sqlite_url) as session:
        headers = {"Authorization": f"Bearer {create_api_key(session, 'acme')}"}
    client = app.test_client()
    response = client.post("/organizations/acme/events", json=_event({"blob": "x" * 3000}), headers=headers)
    assert response.status_code == 413
    assert "limit of 2,048 bytes" in response.get_json()["detail"]
    paths = client.get("/openapi.json").get_json()["paths"]
    events = paths["/organizations/{organization_id}/events"]["post"]
    logs = paths["/organizations/{organization_id}/inference-logs"]["post"]
    assert events["requestBody"]["x-max-body-bytes"] == 2048
    assert logs["requestBody"]["x-max-body-bytes"] == 4096
    assert "4,096 bytes" in logs["requestBody"]["description"]
    assert {"413", "415", "422"} <= set(events["responses"])


def test_event_data_is_at_most_256_kib_serialised(client, org):
    url = f"/organizations/{org.id}/events"
    # {"model":"m","blob":"xxx..."} serialises to 23 bytes besides the x's.
    at_limit = client.post(url, json=_event({"blob": "x" * (256 * 1024 - 23)}), headers=org.headers)
    assert at_limit.status_code == 202, at_limit.get_json()
    past = client.post(url, json=_event({"blob": "x" * (256 * 1024 - 22)}), headers=org.headers)
    assert past.status_code == 422
    [error] = past.get_json()["errors"]
    assert error["field"] == "data"
    assert "262,144 bytes" in error["message"]


@pytest.mark.parametrize(
    "record,field",
    [
        ({"features": {f"f{i}": 1 for i in range(1001)}}, "records[0].features"),
        ({"prediction": ["x" * 1000] * 70}, "records[0].prediction"),
        ({"label": {"classes": "y" * (64 * 1024)}}, "records[0].label"),
        ({"timestamp": "2026-01-01T00:00:00." + "0" * 60 + "Z"}, "records[0].timestamp"),
    ],
)
def test_free_form_inference_fields_are_bounded(client, org, record, field):
    body = {"records": [{"model": "fraud", "features": {"a": 1}, "prediction": 1} | record]}
    response = client.post(f"/organizations/{org.id}/inference-logs", json=body, headers=org.headers)
    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == [field]


def _unbounded(schema: dict, components: dict, where: str, seen: frozenset[str]) -> list[str]:
    """Strings without maxLength, arrays without maxItems, maps without maxProperties, under ``schema``.

    A value bounded as a whole (``x-max-bytes``: its serialised size) and closed sets (enum, const)
    need nothing more.
    """
    if "x-max-bytes" in schema or "enum" in schema or "const" in schema:
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return [] if name in seen else _unbounded(components[name], components, name, seen | {name})
    found = []
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", []):
        found += _unbounded(branch, components, where, seen)
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema:
        found.append(f"{where}: string without maxLength")
    if kind == "array" and "maxItems" not in schema:
        found.append(f"{where}: array without maxItems")
    if kind == "object" and schema.get("additionalProperties", False) is not False and "maxProperties" not in schema:
        found.append(f"{where}: map without maxProperties or x-max-bytes")
    if kind is None and not {"oneOf", "anyOf", "allOf"} & set(schema):
        found.append(f"{where}: any JSON without x-max-bytes")
    for name, member in schema.get("properties", {}).items():
        found += _unbounded(member, components, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        found += _unbounded(schema["items"], components, f"{where}[]", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        found += _unbounded(schema["additionalProperties"], components, f"{where}{{value}}", seen)
    if "propertyNames" in schema:
        found += _unbounded(schema["propertyNames"] | {"type": "string"}, components, f"{where}.propertyNames", seen)
    return found


def test_every_request_string_list_and_map_has_a_documented_maximum(client):
    document = client.get("/openapi.json").get_json()
    components = document["components"]["schemas"]
    unbounded = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                unbounded += _unbounded(schema, components, where, frozenset())
            for parameter in operation["parameters"]:
                if parameter["in"] == "query":
                    name = f"{where}?{parameter['name']}"
                    unbounded += _unbounded(parameter["schema"], components, name, frozenset())
    assert not unbounded, "\n".join(sorted(set(unbounded)))


# --- standard JSON ------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[]" + b"}" * (depth - 1)


def test_nesting_is_allowed_to_the_documented_depth_and_no_further():
    assert parse_standard_json(_nested(MAX_DEPTH)) is not None
    with pytest.raises(NotStandardJson, match=f"deeper than {MAX_DEPTH} levels"):
        parse_standard_json(_nested(MAX_DEPTH + 1))


def test_brackets_and_quotes_inside_strings_do_not_count_as_nesting():
    text = "[" * 500 + '\\"{' * 100 + "\\\\"
    raw = json.dumps({"note": text, "deep": [[[1]]]}).encode()
    assert parse_standard_json(raw)["note"] == text


@pytest.mark.parametrize("before", ["\\", '\\"', '"', "]]]]", '\\\\"}}'])
def test_escapes_before_a_deep_value_do_not_hide_its_depth(before):
    deep: list = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]  # 64 levels of arrays, under the body's object: 65 in all
    raw = json.dumps({"s": before, "deep": deep}).encode()
    with pytest.raises(NotStandardJson, match="deeper than"):
        parse_standard_json(raw)
    assert parse_standard_json(json.dumps({"s": before, "deep": deep[0]}).encode())["s"] == before


def test_standard_json_is_accepted_as_sent():
    raw = '{"pair": "\\ud83d\\ude00", "big": 123456789012345678901234567890, "small": -1.5e-300, "é": null}'
    parsed = parse_standard_json(raw.encode())
    assert parsed == {"pair": "😀", "big": 123456789012345678901234567890, "small": -1.5e-300, "é": None}


@pytest.mark.parametrize(
    "raw,message",
    [
        (b'{"type": "drift.detected", "data": {"psi": NaN}}', "NaN is not a JSON number"),
        (b'{"type": "drift.detected", "data": {"psi": 1e400}}', "beyond the range of a double"),
        (b'{"type": "drift.detected", "data": {"n": ' + b"1" * 400 + b"}}", "beyond the range of a double"),
        (b'{"type": "drift.detected", "data": {"a": 1, "a": 2}}', "'a' appears twice"),
        (b'{"type": "drift.detected", "data": {"s": "\\udfff"}}', "lone UTF-16 surrogate"),
        (b'{"type": "drift.detected", "data": {"s": "\xed\xa0\x80"}}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "deeper than 64 levels"),
    ],
)
def test_non_standard_json_is_422_naming_the_cause(client, org, raw, message):
    response = client.post(
        f"/organizations/{org.id}/events", data=raw, headers=org.headers, content_type="application/json"
    )
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert message in error["message"]


def test_a_lone_surrogate_is_located(client, org):
    raw = b'{"type": "drift.detected", "data": {"list": ["ok", "\\ud800"]}}'
    response = client.post(
        f"/organizations/{org.id}/events", data=raw, headers=org.headers, content_type="application/json"
    )
    assert response.get_json()["errors"][0]["field"] == "data.list[1]"


def test_responses_are_standard_json(app):
    """A float computed as NaN or infinite (never sent: the parser refuses those) leaves as null."""

    class Reading(BaseModel):
        value: float
        values: list[float]
        details: dict[str, Any]

    @app.get("/readings")
    @endpoint(response=Reading, public=True)
    def reading():
        """A reading whose math went wrong."""
        return Reading(value=float("nan"), values=[float("inf"), 1.5], details={"ratio": float("-inf")})

    response = app.test_client().get("/readings")
    assert response.status_code == 200
    assert b"NaN" not in response.data and b"Infinity" not in response.data
    assert parse_standard_json(response.data) == {"value": None, "values": [None, 1.5], "details": {"ratio": None}}
