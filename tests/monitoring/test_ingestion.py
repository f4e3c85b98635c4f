"""Inference-log ingestion and listing over the API."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import create_engine, func, select, text

from store.models import InferenceLog
from tests.monitoring.conftest import REFERENCE, T0, make_records

BASE = "/organizations/acme/inference-logs"


def count_logs(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(InferenceLog)).scalar_one()
    engine.dispose()
    return count


def test_ingest_accepts_and_lists_with_filters_and_pages(api_client, org, database_url):
    records = make_records("churn", T0, 30) + make_records("fraud", T0, 5)
    records[0]["latency_ms"] = 12.5
    records[0]["label"] = 1
    response = api_client.post(BASE, json={"records": records}, headers=org.headers)
    assert response.status_code == 202
    assert response.json == {"accepted": 35}

    window = {
        "model": "churn",
        "from": (T0 + timedelta(seconds=10)).isoformat(),
        "to": (T0 + timedelta(seconds=20)).isoformat(),
    }
    page = api_client.get(BASE, query_string={**window, "limit": 4}, headers=org.headers).json
    seen = list(page["items"])
    while page["next_cursor"]:
        page = api_client.get(
            BASE, query_string={**window, "limit": 4, "cursor": page["next_cursor"]}, headers=org.headers
        ).json
        seen += page["items"]
    assert len(seen) == 10 and {item["model"] for item in seen} == {"churn"}
    assert [item["features"]["x"] for item in seen] == [r["features"]["x"] for r in records[10:20]]

    first = api_client.get(BASE, query_string={"model": "churn", "limit": 1}, headers=org.headers).json["items"][0]
    assert first["latency_ms"] == 12.5 and first["label"] == 1 and first["model_version"] == "1"
    assert api_client.get(BASE, query_string={"model": "fraud"}, headers=org.headers).json["items"].__len__() == 5


def test_one_malformed_record_rejects_the_request_and_writes_nothing(api_client, org, database_url):
    records = make_records("churn", T0, 3)
    records[1]["features"] = {"x": {"nested": 1}}
    response = api_client.post(BASE, json={"records": records}, headers=org.headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [error["field"] for error in response.json["errors"]] == ["records[1].features"]
    assert count_logs(database_url) == 0


def test_missing_prediction_naive_timestamp_and_too_many_records_are_422(api_client, org, database_url):
    records = make_records("churn", T0, 2)
    del records[0]["prediction"]
    records[1]["timestamp"] = "2026-11-01T00:00:00"
    response = api_client.post(BASE, json={"records": records}, headers=org.headers)
    assert response.status_code == 422
    assert {error["field"] for error in response.json["errors"]} == {"records[0].prediction", "records[1].timestamp"}

    too_many = {"records": [{"model": "m", "features": {}, "prediction": 0}] * 10_001}
    response = api_client.post(BASE, json=too_many, headers=org.headers)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "records"
    assert count_logs(database_url) == 0


def test_another_organizations_key_gets_404(api_client, org, make_key):
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    assert api_client.post(BASE, json={"records": make_records("m", T0, 1)}, headers=other).status_code == 404
    assert api_client.get(BASE, headers=other).status_code == 404


def test_a_window_of_one_models_logs_is_read_with_the_index(sqlite_url):
    from store.inference_logs import window_features_query

    engine = create_engine(sqlite_url)
    query = window_features_query("acme", "churn", "1", T0, T0 + timedelta(hours=1))
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = " ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    engine.dispose()
    assert "USING INDEX ix_inference_logs_org_model_ts" in plan, plan


def test_values_the_database_cannot_store_are_422_not_500(api_client, org, database_url):
    bad = [
        ({"features": {"x": 10**400}}, "records[0].features"),
        ({"features": {"x": "a\u0000b"}}, "records[0].features"),
        ({"prediction": {"p": "\u0000"}}, "records[0].prediction"),
        ({"label": [1e308 * 10]}, "records[0].label"),
        ({"timestamp": "0001-01-01T00:00:00+05:00"}, "records[0].timestamp"),
        ({"model": "m\u0000"}, "records[0].model"),
    ]
    for change, field in bad:
        record = {**make_records("churn", T0, 1)[0], **change}
        # Serialised by the json module, which writes Infinity (the app's own JSON would write null).
        body = json.dumps({"records": [record]})
        response = api_client.post(BASE, data=body, content_type="application/json", headers=org.headers)
        assert response.status_code == 422, (change, response.json)
        # The request layer names NUL characters and numbers past a double down to the value
        # (records[0].features.x, records[0].label[0]).
        fields = [error["field"] for error in response.json["errors"]]
        assert len(fields) == 1 and (fields[0] == field or fields[0].startswith((field + ".", field + "["))), fields
    too_long = "m" * 201
    monitor = {"reference": REFERENCE, "window_seconds": 3600, "schedule": {"interval_seconds": 300}}
    response = api_client.put(f"/organizations/acme/models/{too_long}/monitor", json=monitor, headers=org.headers)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "model"
    assert count_logs(database_url) == 0
