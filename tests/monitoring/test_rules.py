"""Thresholds (once per episode), recommendation rules (no duplicates) and the scheduled monitor sweep."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import create_engine, select, update

from flows.run_monitors import run_monitors
from store.models import DriftCheck, Monitor, utcnow
from tests.monitoring.conftest import REFERENCE, T0, make_records
from tests.monitoring.test_drift_api import events_of, ingest

ORG = "/organizations/acme"


def hour_window(hour: int) -> dict[str, str]:
    return {"from": (T0 + timedelta(hours=hour)).isoformat(), "to": (T0 + timedelta(hours=hour + 1)).isoformat()}


def test_drift_threshold_breaches_once_per_episode_and_retrain_is_recommended_once(flow_client, org, flows_database):
    client = flow_client
    shifted_hours = [2, 3, 5, 6, 7, 8]
    ingest(client, org.headers, make_records("churn", T0, 300, seed=10))
    for hour in [2, 3, 4, 5, 6, 7, 8]:
        shift = 1.0 if hour in shifted_hours else 0.0
        ingest(client, org.headers, make_records("churn", T0 + timedelta(hours=hour), 300, shift=shift, seed=hour))
    threshold = client.post(
        f"{ORG}/thresholds",
        json={"model": "churn", "metric": "drift.psi", "operator": ">", "value": 0.2},
        headers=org.headers,
    )
    assert threshold.status_code == 201, threshold.json
    threshold_id = threshold.json["id"]

    drifted = []
    for hour in [2, 3, 4, 5, 6, 7, 8]:
        body = {
            "model": "churn",
            "reference": REFERENCE,
            "current": hour_window(hour),
            "method": "psi",
            "features": ["x", "y"],
        }
        check = client.post(f"{ORG}/drift-checks", json=body, headers=org.headers).json
        drifted.append(check["drifted"])
    assert drifted == [True, True, False, True, True, True, True]

    breaches = events_of(flows_database, "threshold.breached")
    # Episodes: hours 2-3 (one event), recovery at 4, hours 5-8 (one event).
    assert len(breaches) == 2
    assert breaches[0].data["threshold_id"] == threshold_id and breaches[0].data["feature"] == "x"
    assert breaches[0].data["value"] > 0.2 and breaches[0].data["operator"] == ">"
    state = client.get(f"{ORG}/thresholds/{threshold_id}", headers=org.headers).json["states"][0]
    assert state["breached"] and state["consecutive_breaches"] == 4

    recommendations = client.get(f"{ORG}/recommendations", headers=org.headers).json["items"]
    # Three consecutive drifted checks first happen at hour 6; hours 7 and 8 find it still open.
    assert [(r["kind"], r["model"], r["details"]["features"]) for r in recommendations] == [("retrain", "churn", ["x"])]
    created = events_of(flows_database, "recommendation.created")
    assert [e.data["recommendation_id"] for e in created] == [recommendations[0]["id"]]

    dismissed = client.post(f"{ORG}/recommendations/{recommendations[0]['id']}/dismiss", headers=org.headers)
    assert dismissed.status_code == 200 and dismissed.json["status"] == "dismissed"
    body = {"model": "churn", "reference": REFERENCE, "current": hour_window(8), "method": "psi", "features": ["x"]}
    client.post(f"{ORG}/drift-checks", json=body, headers=org.headers)
    kinds = [(r["kind"], r["status"]) for r in client.get(f"{ORG}/recommendations", headers=org.headers).json["items"]]
    assert kinds == [("retrain", "dismissed"), ("retrain", "open")]


def test_thresholds_crud_and_validation(api_client, org):
    body = {"metric": "latency_ms.p95", "operator": ">=", "value": 250, "window_seconds": 600}
    created = api_client.post(f"{ORG}/thresholds", json=body, headers=org.headers)
    assert created.status_code == 201 and created.json["model"] is None
    location = created.headers["Location"]
    replaced = api_client.put(location, json={**body, "model": "api", "value": 300}, headers=org.headers)
    assert replaced.json["model"] == "api" and replaced.json["value"] == 300
    listed = api_client.get(f"{ORG}/thresholds", headers=org.headers).json["items"]
    assert [t["id"] for t in listed] == [created.json["id"]]
    bad = api_client.post(
        f"{ORG}/thresholds", json={**body, "metric": "latency.p95", "operator": "=="}, headers=org.headers
    )
    assert bad.status_code == 422 and {e["field"] for e in bad.json["errors"]} == {"metric", "operator"}
    assert api_client.delete(location, headers=org.headers).status_code == 204
    assert api_client.get(location, headers=org.headers).status_code == 404


def test_latency_threshold_on_schedule_and_scale_and_add_monitor_recommendations(flow_client, org, flows_database):
    client = flow_client
    now = utcnow()
    records = make_records("api", now - timedelta(minutes=30), 50, latency_ms=250.0)
    ingest(client, org.headers, records)
    body = {"model": "api", "metric": "latency_ms.p95", "operator": ">", "value": 100, "window_seconds": 3600}
    assert client.post(f"{ORG}/thresholds", json=body, headers=org.headers).status_code == 201

    summaries = [asyncio.run(run_monitors()) for _ in range(4)]
    assert [s["breaches"] for s in summaries] == [1, 1, 1, 1]

    breaches = events_of(flows_database, "threshold.breached")
    assert len(breaches) == 1 and breaches[0].data["value"] == 250.0 and breaches[0].data["metric"] == "latency_ms.p95"
    open_kinds = sorted(
        r["kind"]
        for r in client.get(f"{ORG}/recommendations", query_string={"status": "open"}, headers=org.headers).json[
            "items"
        ]
    )
    assert open_kinds == ["add_monitor", "scale_endpoint"]
    assert len(events_of(flows_database, "recommendation.created")) == 2


def test_a_due_monitor_runs_its_check_on_the_sweep_and_then_waits(flow_client, org, flows_database):
    client = flow_client
    now = utcnow()
    ingest(client, org.headers, make_records("churn", T0, 200, seed=20))
    ingest(client, org.headers, make_records("churn", now - timedelta(minutes=20), 200, shift=1.0, seed=21))
    body = {"reference": REFERENCE, "window_seconds": 3600, "method": "ks", "schedule": {"interval_seconds": 300}}
    created = client.put(f"{ORG}/models/churn/monitor", json=body, headers=org.headers)
    assert created.status_code == 201, created.json
    assert (
        client.put(f"{ORG}/models/churn/monitor", json={**body, "method": "psi"}, headers=org.headers).status_code
        == 200
    )
    bad = client.put(
        f"{ORG}/models/churn/monitor", json={**body, "schedule": {"cron": "not a cron"}}, headers=org.headers
    )
    assert bad.status_code == 422

    engine = create_engine(flows_database)
    with engine.begin() as connection:  # make the monitor due now rather than in five minutes
        connection.execute(update(Monitor).values(next_run_at=now - timedelta(seconds=1)))

    first = asyncio.run(run_monitors())
    assert len(first["checks"]) == 1 and first["failed_checks"] == []
    assert asyncio.run(run_monitors())["checks"] == []  # not due again for five minutes

    with engine.connect() as connection:
        check = connection.execute(select(DriftCheck)).one()
    engine.dispose()
    assert check.method == "psi" and check.status == "completed" and check.drifted
    assert check.current_to - check.current_from == timedelta(seconds=3600)
    monitor = client.get(f"{ORG}/models/churn/monitor", headers=org.headers).json
    assert monitor["last_check_id"] == check.id
    assert monitor["next_run_at"] > utcnow().isoformat()
    assert events_of(flows_database, "drift.detected")[0].data["check_id"] == check.id
    kinds = [r["kind"] for r in client.get(f"{ORG}/recommendations", headers=org.headers).json["items"]]
    assert "add_monitor" not in kinds  # churn has a monitor
    assert client.delete(f"{ORG}/models/churn/monitor", headers=org.headers).status_code == 204


def test_add_monitor_covers_registry_monitored_models_once(flows_database, org):
    from store.db import session_scope
    from store.ids import new_id
    from store.models import Integration, MonitoredModel
    from tasks.monitoring.recommendations import recommend_monitors

    with session_scope(flows_database) as session:
        integration = Integration(
            id=new_id("int"),
            organization_id="acme",
            name="registry",
            type="mlflow",
            config={"tracking_uri": "http://mlflow:5000"},
            secret_fields=[],
        )
        session.add(integration)
        session.flush()
        for version in ("1", "2"):  # two versions of one model: one recommendation
            session.add(
                MonitoredModel(
                    id=new_id("mm"),
                    organization_id="acme",
                    integration_id=integration.id,
                    name="ranker",
                    version=version,
                    external_id=f"models:/ranker/{version}",
                    source="sync",
                )
            )
    first = recommend_monitors.fn()
    assert len(first) == 1 and recommend_monitors.fn() == []
    [event] = events_of(flows_database, "recommendation.created")
    assert event.data["kind"] == "add_monitor" and event.data["model"] == "ranker"
