"""MLflow push: a real ``mlflow server`` posts its registry webhooks to ModelPulse's inbound route,
served by a real HTTP server on loopback; the registry sync reconciles what the push missed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import pytest

from blocks.mlflow import MlflowConnection
from store.db import session_scope
from store.models import Integration
from store.registry import record_model_version
from tests.integrations.conftest import MLFLOW_ADMIN
from tests.integrations.helpers import (
    ensure_sync_deployment,
    integration_id_of,
    model_registered_events,
    monitored,
    run_synced_flow_run,
)
from tests.support.polling import wait_until


@pytest.fixture
def push_integration(client, org, create_integration, mlflow_server, live_api):
    """An MLflow integration with push events, deleted (with its MLflow webhook) after the test."""
    created: list[str] = []

    def create(**config) -> str:
        base = create_integration(
            "mlflow",
            {"tracking_uri": mlflow_server.url, "push_events": True, **config},
            {"username": MLFLOW_ADMIN, "password": mlflow_server.password},
        )
        created.append(base)
        return base

    yield create
    for base in created:
        client.delete(base, headers=org.headers)


def _model(mlflow_server, name: str) -> str:
    """A registered model with version 1 on MLflow; returns the version."""
    mlflow_server.call("POST", "/registered-models/create", json={"name": name})
    return _version(mlflow_server, name)


def _version(mlflow_server, name: str, **tags: str) -> str:
    body = {"name": name, "source": f"s3://bucket/{name}/{uuid.uuid4().hex[:6]}"}
    if tags:
        body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    return mlflow_server.call("POST", "/model-versions/create", json=body)["model_version"]["version"]


def _monitor(database_url: str, integration_id: str, name: str, version: str) -> None:
    """Make ``name`` a monitored model of the integration (as registering it through ModelPulse does)."""
    with session_scope(database_url) as session:
        integration = session.get(Integration, integration_id)
        record_model_version(session, integration, name, version, f"models:/{name}/{version}", source="api")


def _webhook_secret(integration_id: str) -> str:
    block = MlflowConnection.load(f"modelpulse-integration-{integration_id.replace('_', '-')}")
    return block.webhook_secret.get_secret_value()


def _signed(secret: str, body: bytes, delivery_id: str | None = None, timestamp: int | None = None) -> dict:
    """Headers as MLflow signs a delivery (mlflow/webhooks/delivery.py)."""
    delivery_id = delivery_id or str(uuid.uuid4())
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    content = f"{delivery_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": f"v1,{signature}",
    }


def _delivery(event: str, data: dict) -> bytes:
    entity, action = event.split(".")
    return json.dumps(
        {"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00", "data": data}
    ).encode()


def test_a_version_created_on_mlflow_reaches_a_modelpulse_webhook_as_pushed(
    client, org, mlflow_server, push_integration, sqlite_url, live_api, monkeypatch
):
    from store.settings import get_settings
    from tests.webhooks.conftest import FanOutWorker
    from tests.webhooks.receivers import Receiver

    monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
    get_settings.cache_clear()
    name = f"pushed-{uuid.uuid4().hex[:6]}"
    first = _model(mlflow_server, name)
    base = push_integration()
    integration_id = integration_id_of(base)
    _monitor(sqlite_url, integration_id, name, first)
    dispatcher = FanOutWorker(sqlite_url)
    with Receiver() as receiver:
        hook = client.post(
            f"/organizations/{org.id}/webhooks",
            json={"name": "registry", "url": receiver.url, "events": ["model.registered"]},
            headers=org.headers,
        ).get_json()
        dispatcher.start()
        try:
            pushed = _version(mlflow_server, name, team="risk")

            def arrived():
                payloads = [r.verify(hook["signing_secret"]) for r in receiver.received]
                return [p for p in payloads if p["data"]["name"] == name and p["data"]["version"] == pushed]

            (payload,) = wait_until(arrived, 60, "the model.registered delivery", every=0.1)
        finally:
            dispatcher.stop()

    assert payload["type"] == "model.registered"
    assert payload["data"] == {
        "integration_id": integration_id,
        "integration_type": "mlflow",
        "name": name,
        "version": pushed,
        "external_id": f"models:/{name}/{pushed}",
        "source": "push",
    }
    versions = client.get(f"{base}/monitored-models", headers=org.headers).get_json()["items"]
    assert [(v["version"], v["source"], v["tags"]) for v in versions] == [
        (first, "api", {}),
        (pushed, "push", {"team": "risk"}),
    ]


def test_the_webhook_is_registered_with_a_secret_kept_only_in_the_block(
    client, org, mlflow_server, push_integration, live_api, sqlite_url
):
    base = push_integration()
    integration_id = integration_id_of(base)

    integration = client.get(base, headers=org.headers).get_json()

    push = integration["push"]
    assert push["enabled"] is True
    assert push["inbound_url"] == f"{live_api.url}/inbound/mlflow/{integration_id}"
    assert push["mlflow_webhook_status"] == "ACTIVE"
    on_mlflow = mlflow_server.call("GET", f"/webhooks/{push['mlflow_webhook_id']}")["webhook"]
    assert on_mlflow["url"] == push["inbound_url"]
    assert on_mlflow["status"] == "ACTIVE"
    assert {f"{e['entity']}.{e['action']}".lower() for e in on_mlflow["events"]} >= {
        "model_version.created",
        "model_version_alias.created",
        "model_version_tag.set",
    }
    secret = _webhook_secret(integration_id)
    assert len(secret) >= 32
    assert secret not in json.dumps(integration) and "webhook_secret" not in integration["credentials"]
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):  # the database, its WAL and shared memory
        assert secret.encode() not in path.read_bytes()


def test_push_events_without_a_public_url_is_a_422_and_creates_nothing(
    client, org, app, mlflow_server, create_integration
):
    app.config["PUBLIC_URL"] = None
    webhooks_before = mlflow_server.call("GET", "/webhooks").get("webhooks", [])
    body = {
        "name": "no-public-url",
        "type": "mlflow",
        "config": {"tracking_uri": mlflow_server.url, "push_events": True},
        "credentials": {"username": MLFLOW_ADMIN, "password": mlflow_server.password},
    }

    response = client.post(f"/organizations/{org.id}/integrations", json=body, headers=org.headers)

    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == ["config.push_events"]
    assert "MODELPULSE_PUBLIC_URL" in response.get_json()["detail"]
    assert client.get(f"/organizations/{org.id}/integrations", headers=org.headers).get_json()["items"] == []
    assert mlflow_server.call("GET", "/webhooks").get("webhooks", []) == webhooks_before


def test_inbound_deliveries_are_verified_and_a_replay_is_ignored(
    client, org, mlflow_server, push_integration, sqlite_url, caplog
):
    name = f"verified-{uuid.uuid4().hex[:6]}"
    base = push_integration()
    integration_id = integration_id_of(base)
    _monitor(sqlite_url, integration_id, name, "1")
    secret = _webhook_secret(integration_id)
    path = f"/inbound/mlflow/{integration_id}"
    body = _delivery("model_version.created", {"name": name, "version": "7", "source": "s3://b/7", "tags": {}})
    headers = _signed(secret, body)

    first = client.post(path, data=body, headers=headers)
    replayed = client.post(path, data=body, headers=headers)
    forged = client.post(path, data=body, headers=_signed("not-the-secret", body))
    stale = client.post(path, data=body, headers=_signed(secret, body, timestamp=int(time.time()) - 301))
    unsigned = client.post(path, data=body, headers={"Content-Type": "application/json"})
    tampered = client.post(path, data=body.replace(b'"7"', b'"8"'), headers=headers)
    unknown = client.post("/inbound/mlflow/int_00000000000000000000000000", data=body, headers=headers)
    versionless = _delivery("model_version.created", {"name": name, "source": "s3://b/9"})
    malformed = client.post(path, data=versionless, headers=_signed(secret, versionless))

    assert first.status_code == 200 and first.get_json()["status"] == "recorded"
    assert replayed.status_code == 200 and replayed.get_json()["status"] == "duplicate"
    for refused in (forged, stale, unsigned, tampered):
        assert refused.status_code == 401, refused.get_json()
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert secret not in refused.get_data(as_text=True)
    assert "timestamp" in stale.get_json()["detail"]
    assert unknown.status_code == 404 and unknown.headers["Content-Type"] == "application/problem+json"
    assert malformed.status_code == 422 and malformed.get_json()["errors"][0]["field"] == "data.version"
    assert [(v, s) for _, v, s in monitored(sqlite_url, integration_id)] == [("1", "api"), ("7", "push")]
    assert [e["version"] for e in model_registered_events(sqlite_url, integration_id)] == ["1", "7"]
    assert secret not in caplog.text


def test_aliases_and_tags_follow_push_events(client, org, mlflow_server, push_integration, sqlite_url):
    name = f"labelled-{uuid.uuid4().hex[:6]}"
    first = _model(mlflow_server, name)
    base = push_integration()
    _monitor(sqlite_url, integration_id_of(base), name, first)
    second = _version(mlflow_server, name)

    def labels():
        items = client.get(f"{base}/monitored-models", headers=org.headers).get_json()["items"]
        return {item["version"]: (item["aliases"], item["tags"]) for item in items}

    wait_until(lambda: second in labels(), 60, "the second version's labels", every=0.2)
    mlflow_server.call("POST", "/registered-models/alias", json={"name": name, "alias": "champion", "version": first})
    champion_first = wait_until(
        lambda: (v := labels())[first][0] == ["champion"] and v, 60, "the alias on the first version", every=0.2
    )
    assert champion_first[second] == ([], {})
    mlflow_server.call("POST", "/registered-models/alias", json={"name": name, "alias": "champion", "version": second})
    mlflow_server.call(
        "POST", "/model-versions/set-tag", json={"name": name, "version": second, "key": "stage", "value": "prod"}
    )
    moved = wait_until(
        lambda: (v := labels())[second] == (["champion"], {"stage": "prod"}) and v,
        60,
        "the alias and tag to move",
        every=0.2,
    )
    assert moved[first] == ([], {})
    mlflow_server.call("DELETE", "/model-versions/delete-tag", json={"name": name, "version": second, "key": "stage"})
    mlflow_server.call("DELETE", "/registered-models/alias", json={"name": name, "alias": "champion"})
    wait_until(lambda: labels()[second] == ([], {}), 60, "the alias and tag to go", every=0.2)


def test_versions_created_while_modelpulse_is_down_are_recovered_once_by_the_sync(
    client, org, mlflow_server, push_integration, sqlite_url, live_api
):
    name = f"recovered-{uuid.uuid4().hex[:6]}"
    first = _model(mlflow_server, name)
    base = push_integration()
    integration_id = integration_id_of(base)
    _monitor(sqlite_url, integration_id, name, first)
    inbound = f"{live_api.url}/inbound/mlflow/{integration_id}"
    before = mlflow_server.failed_deliveries(inbound)

    live_api.stop()
    missed = [_version(mlflow_server, name) for _ in range(3)]
    # MLflow keeps failed deliveries in memory only; wait until it has given up on each of them.
    wait_until(
        lambda: mlflow_server.failed_deliveries(inbound) - before >= len(missed), 30, "MLflow to give up", every=0.2
    )
    live_api.start()
    ensure_sync_deployment()
    run_synced_flow_run(client.post(f"{base}/sync", headers=org.headers).get_json()["flow_run_id"])
    pushed = _version(mlflow_server, name)
    wait_until(lambda: len(monitored(sqlite_url, integration_id)) == 5, 60, "five monitored versions", every=0.2)
    run_synced_flow_run(client.post(f"{base}/sync", headers=org.headers).get_json()["flow_run_id"])

    def by_version(rows):  # ids made in one millisecond sort at random: order by version instead
        return sorted(rows, key=lambda row: int(row[0]))

    expected = [(first, "api"), *[(version, "sync") for version in missed], (pushed, "push")]
    assert by_version((v, s) for _, v, s in monitored(sqlite_url, integration_id)) == expected
    events = model_registered_events(sqlite_url, integration_id)
    assert by_version((e["version"], e["source"]) for e in events) == expected


def test_put_and_delete_keep_the_mlflow_webhook_in_step(client, org, mlflow_server, push_integration, live_api):
    base = push_integration()
    created = client.get(base, headers=org.headers).get_json()
    webhook_id = created["push"]["mlflow_webhook_id"]
    body = {
        "name": created["name"],
        "type": "mlflow",
        "config": {**created["config"], "sync_interval_seconds": 600},
    }

    renamed = client.put(base, json=body | {"name": "renamed"}, headers=org.headers)
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["push"]["mlflow_webhook_id"] == webhook_id
    off = client.put(base, json=body | {"config": {**body["config"], "push_events": False}}, headers=org.headers)
    assert off.status_code == 200, off.get_json()
    assert off.get_json()["push"] == {
        "enabled": False,
        "inbound_url": f"{live_api.url}/inbound/mlflow/{integration_id_of(base)}",
        "key_header": None,
        "mlflow_webhook_id": None,
        "mlflow_webhook_status": None,
        "checked_at": None,
    }
    assert mlflow_server.http.get(f"/webhooks/{webhook_id}").status_code == 404
    on = client.put(base, json=body, headers=org.headers)
    assert on.status_code == 200, on.get_json()
    again = on.get_json()["push"]["mlflow_webhook_id"]
    assert again != webhook_id and mlflow_server.call("GET", f"/webhooks/{again}")["webhook"]["status"] == "ACTIVE"
    deleted = client.delete(base, headers=org.headers)
    assert deleted.status_code == 204
    assert mlflow_server.http.get(f"/webhooks/{again}").status_code == 404


def test_the_test_endpoint_checks_the_webhook_through_mlflow(client, org, mlflow_server, push_integration):
    base = push_integration()
    webhook_id = client.get(base, headers=org.headers).get_json()["push"]["mlflow_webhook_id"]

    healthy = client.post(f"{base}/test", headers=org.headers)
    mlflow_server.call("PATCH", f"/webhooks/{webhook_id}", json={"status": "DISABLED"})
    disabled = client.post(f"{base}/test", headers=org.headers)

    assert healthy.status_code == 200, healthy.get_json()
    assert healthy.get_json()["push"] == {
        "ok": True,
        "webhook_status": "ACTIVE",
        "delivery_status": 200,
        "message": "MLflow delivered a test event: HTTP 200",
    }
    assert disabled.status_code == 200
    assert disabled.get_json()["push"]["ok"] is False
    assert disabled.get_json()["push"]["webhook_status"] == "DISABLED"
    assert client.get(base, headers=org.headers).get_json()["push"]["mlflow_webhook_status"] == "DISABLED"
