"""Drift checks end to end: logs in through the API, the detect-drift flow, metrics and events out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, func, select

from store.models import DriftCheck, Event
from tests.monitoring.conftest import CURRENT, REFERENCE, T0, make_records

ORG = "/organizations/acme"


def ingest(client, headers, records):
    for start in range(0, len(records), 10_000):
        response = client.post(
            f"{ORG}/inference-logs", json={"records": records[start : start + 10_000]}, headers=headers
        )
        assert response.status_code == 202, response.json


def events_of(database_url: str, type_: str) -> list[Event]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(Event).where(Event.type == type_).order_by(Event.id)).all()
    engine.dispose()
    return rows


def test_drift_check_over_the_api_end_to_end(flow_client, org, flows_database):
    client = flow_client
    ingest(client, org.headers, make_records("churn", T0, 600, seed=1))
    ingest(client, org.headers, make_records("churn", T0 + timedelta(hours=2), 500, shift=0.8, seed=2))

    body = {"model": "churn", "model_version": "1", "reference": REFERENCE, "current": CURRENT, "method": "ks"}
    response = client.post(f"{ORG}/drift-checks", json=body, headers=org.headers)
    assert response.status_code == 201, response.json
    check = response.json
    assert response.headers["Location"].endswith(f"/drift-checks/{check['id']}")
    by_feature = {f["feature"]: f for f in check["features"]}
    assert sorted(by_feature) == ["color", "x", "y"]
    assert by_feature["x"]["method"] == "ks" and by_feature["x"]["drifted"] and by_feature["x"]["p_value"] < 0.05
    assert by_feature["color"]["method"] == "chisquare" and by_feature["color"]["drifted"]  # a new category
    assert not by_feature["y"]["drifted"]
    assert check["drifted"] is True and check["status"] == "completed"
    assert check["reference_count"] == 600 and check["current_count"] == 500
    assert check["reference"]["from"].startswith("2026-11-01T00:00:00")

    assert client.get(response.headers["Location"], headers=org.headers).json["features"] == check["features"]
    metrics = client.get(
        f"{ORG}/drift-metrics", query_string={"model": "churn", "feature": "x"}, headers=org.headers
    ).json
    assert [(m["check_id"], m["method"], m["drifted"]) for m in metrics["items"]] == [(check["id"], "ks", True)]
    assert metrics["items"][0]["current"]["to"].startswith("2026-11-01T03:00:00")

    [event] = events_of(flows_database, "drift.detected")
    assert event.data["check_id"] == check["id"] and event.data["model"] == "churn"
    assert sorted(f["feature"] for f in event.data["features"]) == ["color", "x"]

    psi = client.post(
        f"{ORG}/drift-checks", json={**body, "method": "psi", "features": ["x", "y"]}, headers=org.headers
    )
    assert psi.status_code == 201
    assert [(f["feature"], f["method"], f["threshold"]) for f in psi.json["features"]] == [
        ("x", "psi", 0.2),
        ("y", "psi", 0.2),
    ]


def test_auto_and_an_explicit_threshold(flow_client, org, flows_database):
    ingest(flow_client, org.headers, make_records("churn", T0, 300, seed=3))
    ingest(flow_client, org.headers, make_records("churn", T0 + timedelta(hours=2), 300, seed=4))
    body = {"model": "churn", "reference": REFERENCE, "current": CURRENT}
    auto = flow_client.post(f"{ORG}/drift-checks", json=body, headers=org.headers).json
    assert {f["feature"]: f["method"] for f in auto["features"]} == {"color": "chisquare", "x": "ks", "y": "ks"}
    assert auto["method"] == "auto" and auto["drifted"] is False
    assert events_of(flows_database, "drift.detected") == []

    strict = flow_client.post(
        f"{ORG}/drift-checks", json={**body, "method": "js", "threshold": 1e-6}, headers=org.headers
    )
    assert all(f["drifted"] and f["threshold"] == 1e-6 for f in strict.json["features"])


def test_an_empty_window_or_bad_body_is_422_and_records_no_check(flow_client, org, flows_database):
    ingest(flow_client, org.headers, make_records("churn", T0, 50))
    body = {"model": "churn", "reference": REFERENCE, "current": CURRENT}
    response = flow_client.post(f"{ORG}/drift-checks", json=body, headers=org.headers)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "current"

    backwards = {**body, "reference": {"from": REFERENCE["to"], "to": REFERENCE["from"]}, "method": "median"}
    response = flow_client.post(f"{ORG}/drift-checks", json=backwards, headers=org.headers)
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"reference", "method"}

    engine = create_engine(flows_database)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(DriftCheck)).scalar_one() == 0
    engine.dispose()


def test_another_organizations_check_is_404(flow_client, org, make_key, flows_database):
    ingest(flow_client, org.headers, make_records("churn", T0, 40) + make_records("churn", T0 + timedelta(hours=2), 40))
    body = {"model": "churn", "reference": REFERENCE, "current": CURRENT}
    check_id = flow_client.post(f"{ORG}/drift-checks", json=body, headers=org.headers).json["id"]
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    assert flow_client.get(f"/organizations/globex/drift-checks/{check_id}", headers=other).status_code == 404
    assert flow_client.get(f"{ORG}/drift-checks/{check_id}", headers=org.headers).status_code == 200
