"""The Elasticsearch export's modes and managed templates through the API: create, PUT, /test."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from store.db import session_scope
from store.models import Export

LOGS = "modelpulse-inference-logs"
PASSWORD = "es-secret-pw-7f3a"


def es_body(es, config=None, **extra):
    return {
        "name": "kibana",
        "type": "elasticsearch",
        "config": {"url": es.url, **(config or {})},
        "credentials": {"username": "elastic", "password": PASSWORD},
        "streams": ["inference_logs"],
        **extra,
    }


def base(org_id: str) -> str:
    return f"/organizations/{org_id}/exports"


def templates_for(es, name: str) -> list[str]:
    """The templates whose patterns match ``name``."""
    return [t for t, body in es.templates.items() if any(fnmatchcase(name, p) for p in body["index_patterns"])]


def test_create_defaults_to_data_streams_and_installs_templates_and_policies(api, org_id, es):
    created = api.post(base(org_id), json=es_body(es))

    assert created.status_code == 201, created.json
    config = created.json["config"]
    assert (config["mode"], config["manage_templates"], config["retention_days"]) == ("data_stream", True, 30)
    assert created.json["status_detail"] is None
    for stream_name in (LOGS, "modelpulse-drift-metrics", "modelpulse-events"):
        assert templates_for(es, stream_name) == [stream_name]
        assert "data_stream" in es.templates[stream_name]
        assert es.policies[stream_name]["version"] == 1
    assert es.policies[LOGS]["policy"]["phases"]["delete"]["min_age"] == "30d"


def test_test_installs_again_idempotently_and_reports_a_templates_line(api, org_id, es):
    export_id = api.post(base(org_id), json=es_body(es)).json["id"]
    puts_after_create = es.template_puts[LOGS]

    first = api.post(f"{base(org_id)}/{export_id}/test").json
    second = api.post(f"{base(org_id)}/{export_id}/test").json

    assert first["ok"] is second["ok"] is True
    assert first["checks"][-1]["name"] == "templates" and first["checks"][-1]["ok"] is True
    assert LOGS in first["checks"][-1]["detail"]
    assert es.template_puts[LOGS] == puts_after_create + 2, "each /test installs again"
    assert templates_for(es, LOGS) == [LOGS], "and leaves one template for the stream"
    assert es.policies[LOGS]["version"] == 1, "an unchanged ILM policy is not a new version"


def test_manage_templates_false_installs_nothing_on_create_or_test(api, org_id, es):
    created = api.post(base(org_id), json=es_body(es, config={"manage_templates": False}))
    assert created.status_code == 201, created.json

    checks = api.post(f"{base(org_id)}/{created.json['id']}/test").json["checks"]

    assert checks[-1] == {"name": "templates", "ok": True, "detail": "not managed (config.manage_templates is false)"}
    assert not es.template_puts and not es.policies
    assert not [r for r in es.requests if "_index_template" in r.path or "_ilm" in r.path]


def test_a_failed_install_on_create_is_recorded_and_cleared_once_it_works(api, org_id, es):
    bad = es_body(es)
    bad["credentials"]["password"] = "not-the-password"

    created = api.post(base(org_id), json=bad)

    assert created.status_code == 201, created.json
    assert created.json["status_detail"].startswith("templates not installed: ")
    assert "rejected the credentials (401)" in created.json["status_detail"]
    assert not es.template_puts and PASSWORD not in created.json["status_detail"]
    tested = api.post(f"{base(org_id)}/{created.json['id']}/test").json
    assert tested["ok"] is False

    fixed = api.put(f"{base(org_id)}/{created.json['id']}", json=es_body(es))

    assert fixed.status_code == 200, fixed.json
    assert fixed.json["status_detail"] is None
    assert templates_for(es, LOGS) == [LOGS]


def test_a_put_changing_retention_updates_the_policy(api, org_id, es):
    export_id = api.post(base(org_id), json=es_body(es)).json["id"]

    updated = api.put(f"{base(org_id)}/{export_id}", json=es_body(es, config={"retention_days": 90}))

    assert updated.status_code == 200, updated.json
    assert es.policies[LOGS]["version"] == 2
    assert es.policies[LOGS]["policy"]["phases"]["delete"]["min_age"] == "90d"


def forget_mode(export_id: str) -> None:
    """Make the stored config look like one saved before modes existed."""
    with session_scope() as session:
        record = session.get_one(Export, export_id)
        record.config = {k: v for k, v in record.config.items() if k != "mode"}


def test_a_put_without_mode_keeps_the_stored_mode(api, org_id, es):
    legacy = api.post(base(org_id), json=es_body(es, name="legacy")).json["id"]
    forget_mode(legacy)
    streams = api.post(base(org_id), json=es_body(es, name="streams")).json["id"]

    kept_index = api.put(f"{base(org_id)}/{legacy}", json=es_body(es, name="legacy", config={"page_size": 200}))
    kept_streams = api.put(f"{base(org_id)}/{streams}", json=es_body(es, name="streams"))

    assert kept_index.status_code == 200, kept_index.json
    assert (kept_index.json["config"]["mode"], kept_index.json["config"]["page_size"]) == ("index", 200)
    assert kept_streams.json["config"]["mode"] == "data_stream"
    switched = api.put(f"{base(org_id)}/{legacy}", json=es_body(es, name="legacy", config={"mode": "data_stream"}))
    assert switched.json["config"]["mode"] == "data_stream"
    assert api.get(f"{base(org_id)}/{legacy}").json["config"]["mode"] == "data_stream"


def test_a_put_from_another_type_without_mode_gets_the_create_default(api, org_id, es, datadog):
    created = api.post(base(org_id), json={
        "name": "dd", "type": "datadog", "config": {"api_url": datadog.url},
        "credentials": {"api_key": "dd-secret-api-key-c0ffee", "app_key": "app"},
    })
    assert created.status_code == 201, created.json

    switched = api.put(f"{base(org_id)}/{created.json['id']}", json=es_body(es, name="dd"))

    assert switched.status_code == 200, switched.json
    assert switched.json["config"]["mode"] == "data_stream"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"mode": "stream"}, "config.mode"),
        ({"mode": None}, "config.mode"),
        ({"retention_days": 0}, "config.retention_days"),
        ({"retention_days": "a month"}, "config.retention_days"),
        ({"manage_templates": "sometimes"}, "config.manage_templates"),
    ],
)
def test_bad_mode_retention_and_manage_templates_are_422_naming_the_field(api, org_id, es, config, field):
    created = api.post(base(org_id), json=es_body(es, config=config))
    assert created.status_code == 422, created.json
    assert [e["field"] for e in created.json["errors"]] == [field]

    export_id = api.post(base(org_id), json=es_body(es, name="valid")).json["id"]
    updated = api.put(f"{base(org_id)}/{export_id}", json=es_body(es, name="valid", config=config))
    assert updated.status_code == 422, updated.json
    assert [e["field"] for e in updated.json["errors"]] == [field]
    assert not es.bulk_requests
