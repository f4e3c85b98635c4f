"""Vertex AI integration against the wire-level v1 REST fake (with its OAuth token endpoint)."""

from __future__ import annotations

import pytest

from flows.sync_registry import sync_registry
from store.db import session_scope
from store.metrics import REGISTRY_SYNCS
from store.models import Integration
from store.registry import record_model_version, sync_state
from tasks.registry_tasks import sync_versions
from tests.fakes.vertex_ai import new_service_account
from tests.integrations.conftest import VERTEX_LOCATION, VERTEX_PARENT, VERTEX_PROJECT
from tests.integrations.helpers import integration_id_of, model_registered_events, monitored
from tests.support.polling import wait_until

IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest"


def _config(api_endpoint: str) -> dict:
    return {"project_id": VERTEX_PROJECT, "location": VERTEX_LOCATION, "api_endpoint": api_endpoint}


@pytest.fixture
def vertex_integration(create_integration, vertex, service_account):
    return create_integration("vertex_ai", _config(vertex.url), {"service_account_info": service_account})


def test_lists_models_with_versions_and_endpoints(client, org, vertex, vertex_integration):
    first = vertex.fake.add_model(VERTEX_PARENT, "churn", "gs://bucket/churn/1")
    second = vertex.fake.add_version(VERTEX_PARENT, first["name"].rsplit("/", 1)[-1], "gs://bucket/churn/2")
    endpoint = vertex.fake.add_endpoint(VERTEX_PARENT, "churn-endpoint", [(first, 100)])

    response = client.get(f"{vertex_integration}/models", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    items = {i["version"]: i for i in response.get_json()["items"]}
    assert items["1"]["endpoints"] == [endpoint["name"]]
    assert items["2"]["aliases"] == ["default"] and items["2"]["source"] == "gs://bucket/churn/2"
    assert items["2"]["external_id"] == f"{second['name']}@2"
    # The token came from the key's own token_uri and is what the API calls carried.
    token_calls = [r for r in vertex.fake.requests if r.path == "/token"]
    api_calls = [r for r in vertex.fake.requests if r.path.startswith("/v1/")]
    assert token_calls and all(r.authorization.removeprefix("Bearer ") in vertex.fake.tokens for r in api_calls)


def test_register_uploads_waits_for_the_operation_and_emits_event(client, org, vertex, vertex_integration, sqlite_url):
    body = {
        "name": "fraud",
        "artifact_uri": "gs://bucket/fraud/1",
        "serving_container_image_uri": IMAGE,
        "tags": {"team": "risk"},
    }

    response = client.post(f"{vertex_integration}/register-model", json=body, headers=org.headers)

    assert response.status_code == 201, response.get_json()
    registered = response.get_json()
    [(model_id, versions)] = vertex.fake.models.items()
    assert versions[0]["displayName"] == "fraud" and versions[0]["containerSpec"]["imageUri"] == IMAGE
    assert versions[0]["labels"] == {"team": "risk"}
    assert any(r.path.startswith("/ui/") and "/operations/" in r.path for r in vertex.fake.requests)
    assert registered["external_id"] == f"{VERTEX_PARENT}/models/{model_id}@1"
    integration_id = integration_id_of(vertex_integration)
    [event] = model_registered_events(sqlite_url, integration_id)
    assert event == {
        "integration_id": integration_id,
        "integration_type": "vertex_ai",
        "name": "fraud",
        "version": "1",
        "external_id": registered["external_id"],
        "source": "api",
    }


def test_register_answers_202_with_a_status_url_when_the_upload_outlasts_the_wait(
    app, client, org, vertex, vertex_integration, sqlite_url
):
    app.config["REGISTER_MODEL_WAIT_SECONDS"] = 0.01
    body = {"name": "slow", "artifact_uri": "gs://bucket/slow/1", "serving_container_image_uri": IMAGE}

    response = client.post(f"{vertex_integration}/register-model", json=body, headers=org.headers)

    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert response.headers["Location"] == accepted["status_url"]
    first_look = client.get(accepted["status_url"], headers=org.headers).get_json()
    assert first_look["flow_run_id"] == accepted["flow_run_id"]

    status = wait_until(
        lambda: (s := client.get(accepted["status_url"], headers=org.headers).get_json())["status"]
        in ("COMPLETED", "FAILED", "CRASHED")
        and s,
        60,
        "the registration's flow run to end",
        every=0.2,
    )

    assert status["status"] == "COMPLETED"
    assert status["model"]["name"] == "slow" and status["model"]["version"] == "1"
    elsewhere = accepted["status_url"].replace(integration_id_of(vertex_integration), "int_unknown")
    assert client.get(elsewhere, headers=org.headers).status_code == 404


def test_endpoints_and_their_recorded_changes(client, org, vertex, vertex_integration):
    version = vertex.fake.add_model(VERTEX_PARENT, "churn")
    endpoint = vertex.fake.add_endpoint(VERTEX_PARENT, "churn-endpoint", [(version, 100)])
    sync_registry()  # the scheduled run: syncs due integrations and monitors their endpoints
    vertex.fake.deploy(endpoint, [])
    sync_registry(integration_id=None)  # not due again yet: nothing recorded

    response = client.get(f"{vertex_integration}/endpoints", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    [listed] = response.get_json()["items"]
    assert listed["status"] == "EMPTY" and listed["deployments"] == []
    assert [c["status"] for c in listed["status_changes"]] == ["SERVING"]
    assert listed["status_changes"][0]["deployments"][0]["traffic"] == 100


def test_sync_records_new_versions_of_monitored_models(client, org, vertex, vertex_integration, sqlite_url):
    body = {"name": "churn", "artifact_uri": "gs://bucket/churn/1", "serving_container_image_uri": IMAGE}
    assert client.post(f"{vertex_integration}/register-model", json=body, headers=org.headers).status_code == 201
    [model_id] = vertex.fake.models
    vertex.fake.add_version(VERTEX_PARENT, model_id, "gs://bucket/churn/2")
    vertex.fake.add_model(VERTEX_PARENT, "unmonitored")
    syncs = REGISTRY_SYNCS.labels("vertex_ai", "succeeded")
    before = syncs._value.get()

    recorded = sync_registry(integration_id=integration_id_of(vertex_integration))

    integration_id = integration_id_of(vertex_integration)
    assert recorded == {integration_id: 1}
    assert monitored(sqlite_url, integration_id) == [("churn", "1", "api"), ("churn", "2", "sync")]
    assert [e["source"] for e in model_registered_events(sqlite_url, integration_id)] == ["api", "sync"]
    assert syncs._value.get() == before + 1  # modelpulse_registry_syncs_total{type="vertex_ai",outcome="succeeded"}


def test_a_key_the_token_endpoint_rejects_is_a_502_with_googles_message(client, org, vertex, create_integration):
    unknown_key, _public = new_service_account(vertex.token_uri, VERTEX_PROJECT)  # never registered with the fake
    integration = create_integration("vertex_ai", _config(vertex.url), {"service_account_info": unknown_key})

    response = client.post(f"{integration}/test", headers=org.headers)

    assert response.status_code == 502
    assert "Invalid JWT Signature" in response.get_json()["detail"]


def test_unreachable_api_is_a_502(client, org, create_integration, vertex, service_account, closed_port_url):
    integration = create_integration("vertex_ai", _config(closed_port_url), {"service_account_info": service_account})

    response = client.get(f"{integration}/models", headers=org.headers)

    assert response.status_code == 502
    assert "Connection refused" in response.get_json()["detail"]


def test_a_platform_slower_than_the_deadline_is_a_504(app, client, org, vertex, vertex_integration):
    app.config["REGISTRY_CALL_DEADLINE_SECONDS"] = 0.5
    vertex.fake.inject(delay=2.0)

    response = client.get(f"{vertex_integration}/models", headers=org.headers)

    assert response.status_code == 504
    assert response.headers["Content-Type"] == "application/problem+json"


def test_platform_errors_carry_the_platforms_message(client, org, vertex, vertex_integration):
    vertex.fake.inject(status=503, message="The service is currently unavailable.", times=10)

    response = client.get(f"{vertex_integration}/models", headers=org.headers)

    assert response.status_code == 502
    assert "The service is currently unavailable." in response.get_json()["detail"]


def test_a_failed_sync_is_recorded_with_the_platforms_message(
    client, org, create_integration, service_account, closed_port_url, sqlite_url, monkeypatch
):
    integration_id = integration_id_of(
        create_integration("vertex_ai", _config(closed_port_url), {"service_account_info": service_account})
    )
    with session_scope(sqlite_url) as session:
        record_model_version(session, session.get(Integration, integration_id), "churn", "1", "m@1", source="api")
    monkeypatch.setattr(sync_versions, "retry_delay_seconds", 0)  # keep the retries, skip their waits
    failed = REGISTRY_SYNCS.labels("vertex_ai", "failed")
    before = failed._value.get()

    with pytest.raises(RuntimeError, match="sync failed"):
        sync_registry(integration_id=integration_id)
    assert failed._value.get() == before + 1

    with session_scope(sqlite_url) as session:
        state = sync_state(session, integration_id)
        assert state.last_status == "failed"
        assert "could not be reached" in state.last_error and "Connection refused" in state.last_error
