"""MLflow integration against a real ``mlflow server`` with basic auth."""

from __future__ import annotations

import json
import os

import pytest
from prefect.client.orchestration import get_client

from tests.integrations.conftest import MLFLOW_ADMIN
from tests.integrations.helpers import (
    ensure_sync_deployment,
    integration_id_of,
    model_registered_events,
    monitored,
    run_synced_flow_run,
)


@pytest.fixture
def mlflow_integration(create_integration, mlflow_server):
    return create_integration(
        "mlflow", {"tracking_uri": mlflow_server.url}, {"username": MLFLOW_ADMIN, "password": mlflow_server.password}
    )


def _seed_model(mlflow_server, name: str, source: str) -> str:
    mlflow_server.call("POST", "/registered-models/create", json={"name": name})
    version = mlflow_server.call("POST", "/model-versions/create", json={"name": name, "source": source})
    return version["model_version"]["version"]


def test_lists_registered_models_with_versions_and_aliases(client, org, mlflow_server, mlflow_integration):
    version = _seed_model(mlflow_server, "listed-model", "s3://bucket/listed/1")
    mlflow_server.call(
        "POST", "/registered-models/alias", json={"name": "listed-model", "alias": "champion", "version": version}
    )

    response = client.get(f"{mlflow_integration}/models?limit=500", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    items = {(i["name"], i["version"]): i for i in response.get_json()["items"]}
    listed = items[("listed-model", version)]
    assert listed["aliases"] == ["champion"]
    assert listed["source"] == "s3://bucket/listed/1"
    assert listed["external_id"] == f"models:/listed-model/{version}"


def test_register_creates_model_and_version_and_emits_event(client, org, mlflow_server, mlflow_integration, sqlite_url):
    body = {"name": "registered-model", "source": "s3://bucket/registered/1", "tags": {"team": "risk"}}

    response = client.post(f"{mlflow_integration}/register-model", json=body, headers=org.headers)

    assert response.status_code == 201, response.get_json()
    registered = response.get_json()
    on_platform = mlflow_server.call(
        "GET", "/model-versions/get", params={"name": "registered-model", "version": registered["version"]}
    )["model_version"]
    assert on_platform["source"] == "s3://bucket/registered/1"
    assert {"key": "team", "value": "risk"} in on_platform["tags"]
    integration_id = integration_id_of(mlflow_integration)
    assert monitored(sqlite_url, integration_id) == [("registered-model", registered["version"], "api")]
    assert model_registered_events(sqlite_url, integration_id) == [
        {
            "integration_id": integration_id,
            "integration_type": "mlflow",
            "name": "registered-model",
            "version": registered["version"],
            "external_id": f"models:/registered-model/{registered['version']}",
            "source": "api",
        }
    ]
    status = client.get(response.headers["Location"], headers=org.headers).get_json()
    assert status["status"] == "COMPLETED" and status["model"]["version"] == registered["version"]
    with get_client(sync_client=True) as prefect:
        parameters = prefect.read_flow_run(registered["flow_run_id"]).parameters
    assert parameters["integration_id"] == integration_id
    assert mlflow_server.password not in json.dumps(parameters)
    assert mlflow_server.password not in json.dumps([response.get_json(), status])


def test_register_without_source_names_the_field(client, org, mlflow_integration):
    response = client.post(f"{mlflow_integration}/register-model", json={"name": "m"}, headers=org.headers)

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["source"]


def test_sync_records_new_versions_of_monitored_models(client, org, mlflow_server, mlflow_integration, sqlite_url):
    body = {"name": "synced-model", "source": "s3://bucket/synced/1"}
    first = client.post(f"{mlflow_integration}/register-model", json=body, headers=org.headers).get_json()
    newer = mlflow_server.call(
        "POST", "/model-versions/create", json={"name": "synced-model", "source": "s3://bucket/synced/2"}
    )
    _seed_model(mlflow_server, "unmonitored-model", "s3://bucket/other/1")
    ensure_sync_deployment()

    response = client.post(f"{mlflow_integration}/sync", headers=org.headers)

    assert response.status_code == 202, response.get_json()
    run_synced_flow_run(response.get_json()["flow_run_id"])
    integration_id = integration_id_of(mlflow_integration)
    new_version = newer["model_version"]["version"]
    assert monitored(sqlite_url, integration_id) == [
        ("synced-model", first["version"], "api"),
        ("synced-model", new_version, "sync"),
    ]
    events = model_registered_events(sqlite_url, integration_id)
    assert [(e["version"], e["source"]) for e in events] == [(first["version"], "api"), (new_version, "sync")]


def test_test_endpoint_reports_the_platform_answer(client, org, mlflow_integration):
    response = client.post(f"{mlflow_integration}/test", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    assert "registered model" in response.get_json()["message"]


def test_bad_credentials_are_a_502_with_mlflows_message_and_stay_scoped(
    client, org, mlflow_server, mlflow_integration, create_integration
):
    wrong = create_integration(
        "mlflow", {"tracking_uri": mlflow_server.url}, {"username": MLFLOW_ADMIN, "password": "wrong"}
    )

    rejected = client.get(f"{wrong}/models", headers=org.headers)
    accepted = client.post(f"{mlflow_integration}/test", headers=org.headers)
    rejected_again = client.post(f"{wrong}/test", headers=org.headers)

    assert rejected.status_code == 502
    assert rejected.headers["Content-Type"] == "application/problem+json"
    # MLflow's basic-auth app answers plain text: its status is shown, the text is not.
    assert "HTTP 401 (non-JSON body omitted)" in rejected.get_json()["detail"]
    assert accepted.status_code == 200
    assert rejected_again.status_code == 502
    assert "wrong" not in rejected.get_json()["detail"]
    assert not [name for name in os.environ if name.startswith("MLFLOW_TRACKING_")]


def test_unreachable_server_is_a_502(client, org, create_integration, closed_port_url):
    unreachable = create_integration("mlflow", {"tracking_uri": closed_port_url}, {})

    response = client.get(f"{unreachable}/models", headers=org.headers)

    assert response.status_code == 502
    assert "Connection refused" in response.get_json()["detail"]


def test_mlflow_has_no_endpoints(client, org, mlflow_integration):
    response = client.get(f"{mlflow_integration}/endpoints", headers=org.headers)

    assert response.status_code == 422
