"""The export API beyond CRUD: schedules kept in step with deployments, trigger, runs, rejected, test."""

from __future__ import annotations

from prefect.client.orchestration import get_client

from flows.export import export
from flows.export_deployments import deployment_schedules
from tests.exports import seed


def es_body(es, **extra):
    return {
        "name": "kibana",
        "type": "elasticsearch",
        "config": {"url": es.url},
        "credentials": {"username": "elastic", "password": "es-secret-pw-7f3a"},
        "streams": ["inference_logs"],
        **extra,
    }


def base(org_id: str) -> str:
    return f"/organizations/{org_id}/exports"


def test_schedule_follows_the_export_through_create_update_disable_delete(api, org_id, es):
    created = api.post(base(org_id), json=es_body(es, schedule={"interval_seconds": 900}))
    assert created.status_code == 201, created.json
    export_id = created.json["id"]
    assert created.json["status_detail"] is None

    paused, schedules = deployment_schedules(export_id)
    assert not paused and [s.schedule.interval.total_seconds() for s in schedules] == [900]

    updated = api.put(f"{base(org_id)}/{export_id}", json=es_body(es, schedule={"cron": "*/5 * * * *"}, enabled=False))
    assert updated.status_code == 200, updated.json
    paused, schedules = deployment_schedules(export_id)
    assert paused and [s.schedule.cron for s in schedules] == ["*/5 * * * *"]
    assert [s.active for s in schedules] == [False]

    api.put(f"{base(org_id)}/{export_id}", json=es_body(es, schedule=None))
    paused, schedules = deployment_schedules(export_id)
    assert not paused and schedules == []

    assert api.delete(f"{base(org_id)}/{export_id}").status_code == 204
    with get_client(sync_client=True) as client:
        names = [d.name for d in client.read_deployments()]
    assert export_id not in names


def test_trigger_starts_a_flow_run_with_ids_only_then_runs_and_rejected_are_readable(api, org_id, es):
    export_id = api.post(base(org_id), json=es_body(es)).json["id"]
    seed.inference_logs(org_id, 4)

    triggered = api.post(f"{base(org_id)}/{export_id}/trigger")

    assert triggered.status_code == 202, triggered.json
    body = triggered.json
    assert body["status"] == "scheduled"
    assert body["status_url"] == f"{base(org_id)}/{export_id}/runs/{body['run_id']}"
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(body["flow_run_id"])
        deployment = client.read_deployment(flow_run.deployment_id)
    assert deployment.name == export_id
    assert flow_run.parameters == {"export_id": export_id, "run_id": body["run_id"], "backfill": None}
    assert api.get(body["status_url"]).json["status"] == "scheduled"

    # Execute that run in process (the worker path is covered by test_export_worker.py).
    ids = seed.record_ids(org_id)
    es.reject(ids[1], reason="failed to parse field [modelpulse.prediction]")
    export(export_id, run_id=body["run_id"])

    run = api.get(body["status_url"]).json
    assert run["status"] == "completed_with_errors"
    assert run["streams"] == {"inference_logs": {"shipped": 3, "rejected": 1, "retried": 0}}
    assert run["started_at"] and run["finished_at"] and run["mode"] == "incremental"
    listed = api.get(f"{base(org_id)}/{export_id}/runs").json
    assert [r["id"] for r in listed["items"]] == [body["run_id"]]
    rejected = api.get(f"{body['status_url']}/rejected").json["items"]
    assert [(r["record_id"], r["status"]) for r in rejected] == [(ids[1], 400)]
    assert "modelpulse.prediction" in rejected[0]["reason"]


def test_trigger_backfill_body_is_validated_and_passed_on(api, org_id, es):
    export_id = api.post(base(org_id), json=es_body(es)).json["id"]
    url = f"{base(org_id)}/{export_id}/trigger"

    bad_range = api.post(url, json={"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"})
    unknown_stream = api.post(url, json={"streams": ["drift_metrics"]})
    naive = api.post(url, json={"from": "2026-11-01T00:00:00"})
    assert bad_range.status_code == unknown_stream.status_code == naive.status_code == 422
    assert unknown_stream.json["errors"][0]["field"] == "streams"

    ok = api.post(url, json={"streams": ["inference_logs"], "from": "2026-11-01T00:00:00Z"})
    assert ok.status_code == 202
    with get_client(sync_client=True) as client:
        parameters = client.read_flow_run(ok.json["flow_run_id"]).parameters
    assert parameters["backfill"] == {"streams": ["inference_logs"], "from": "2026-11-01T00:00:00+00:00", "to": None}
    assert api.get(ok.json["status_url"]).json["mode"] == "backfill"


def test_unknown_and_foreign_ids_are_404_and_disabled_exports_cannot_be_triggered(api, org_id, es):
    export_id = api.post(base(org_id), json=es_body(es, enabled=False)).json["id"]
    other_org = seed.organization()

    assert api.post(f"{base(org_id)}/{export_id}/trigger").status_code == 409
    assert api.get(f"{base(org_id)}/exp_nope/runs").status_code == 404
    assert api.get(f"{base(org_id)}/{export_id}/runs/xrun_nope").status_code == 404
    assert api.get(f"{base(other_org)}/{export_id}/runs").status_code == 404


def test_connection_test_reports_what_failed(api, org_id, es, hec, datadog):
    good = api.post(base(org_id), json=es_body(es)).json["id"]
    wrong_password = {"username": "elastic", "password": "x"}
    bad = api.post(base(org_id), json=es_body(es, name="bad", credentials=wrong_password)).json["id"]
    splunk = api.post(base(org_id), json={
        "name": "splunk", "type": "splunk", "config": {"hec_url": hec.url}, "credentials": {"hec_token": "wrong"},
    }).json["id"]
    dd = api.post(base(org_id), json={
        "name": "dd", "type": "datadog", "config": {"api_url": datadog.url},
        "credentials": {"api_key": "dd-secret-api-key-c0ffee", "app_key": "app"},
    }).json["id"]

    assert api.post(f"{base(org_id)}/{good}/test").json["ok"] is True
    failed = api.post(f"{base(org_id)}/{bad}/test").json
    assert failed["ok"] is False and failed["checks"][1] == {
        "name": "credentials", "ok": False, "detail": "Elasticsearch rejected the credentials (401)"
    }
    splunk_result = api.post(f"{base(org_id)}/{splunk}/test").json
    assert splunk_result["ok"] is False and "rejected the token" in splunk_result["checks"][-1]["detail"]
    assert api.post(f"{base(org_id)}/{dd}/test").json["ok"] is True


def test_page_size_is_a_validated_config_field_that_sets_the_unit_of_acknowledgement(api, org_id, es):
    too_small = api.post(base(org_id), json=es_body(es, config={"url": es.url, "page_size": 99}))
    assert too_small.status_code == 422
    assert [e["field"] for e in too_small.json["errors"]] == ["config.page_size"]

    created = api.post(base(org_id), json=es_body(es, config={"url": es.url, "page_size": 100}))
    assert created.status_code == 201, created.json
    assert created.json["config"]["page_size"] == 100
    seed.inference_logs(org_id, 250)
    before = es.bulk_requests

    export(created.json["id"])

    assert es.bulk_requests - before == 3  # pages of 100, 100 and 50, each acknowledged in turn
    assert set(seed.record_ids(org_id)) <= es.ids("modelpulse-inference-logs")
