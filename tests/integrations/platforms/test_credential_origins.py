"""A PUT that moves an integration to another origin must send every stored secret again, and is
refused before any platform call (MLflow's webhook subscription included); a loopback server at
the new origin records every request."""

from __future__ import annotations

import base64

import pytest

from tests.fakes.canned import CannedServer
from tests.fakes.vertex_ai import new_service_account
from tests.integrations.conftest import AWS_REGION, MLFLOW_ADMIN, VERTEX_LOCATION, VERTEX_PROJECT

MASK = "********"
AWS_KEYS = {"aws_access_key_id": "AKIAOLDKEY00000001", "aws_secret_access_key": "old-secret-access-key"}


def _put(client, org, url: str, type_: str, config: dict, credentials: dict | None = None):
    body = {"name": "moved", "type": type_, "config": config}
    if credentials is not None:
        body["credentials"] = credentials
    return client.put(url, json=body, headers=org.headers)


def _fields(response) -> list[str]:
    return [e["field"] for e in response.get_json()["errors"]]


@pytest.mark.parametrize("sent", ["omitted", "masked"])
def test_mlflow_move_without_credentials_is_422_before_the_webhook_moves(
    client, org, create_integration, mlflow_server, live_api, sent
):
    url = create_integration(
        "mlflow",
        {"tracking_uri": mlflow_server.url, "push_events": True},
        {"username": MLFLOW_ADMIN, "password": mlflow_server.password},
    )
    webhook_id = client.get(url, headers=org.headers).get_json()["push"]["mlflow_webhook_id"]
    credentials = {"username": MASK, "password": MASK} if sent == "masked" else None
    with CannedServer() as new_origin:
        response = _put(client, org, url, "mlflow", {"tracking_uri": new_origin.url, "push_events": True}, credentials)

    assert response.status_code == 422, response.get_json()
    assert _fields(response) == ["credentials.password", "credentials.username"]
    assert new_origin.requests == [], "no subscription (nor anything else) went to the new origin"
    assert mlflow_server.call("GET", f"/webhooks/{webhook_id}")["webhook"]["status"] == "ACTIVE"
    assert client.get(url, headers=org.headers).get_json()["config"]["tracking_uri"] == mlflow_server.url
    client.delete(url, headers=org.headers)


def test_mlflow_move_with_new_credentials_sends_only_those(client, org, create_integration, mlflow_server):
    url = create_integration(
        "mlflow", {"tracking_uri": mlflow_server.url}, {"username": MLFLOW_ADMIN, "password": mlflow_server.password}
    )
    with CannedServer(200, {}) as new_origin:
        # Basic auth cleared (null), a token given: a move may also drop a secret, explicitly.
        resent = {"username": None, "password": None, "token": "new-token-123"}
        response = _put(client, org, url, "mlflow", {"tracking_uri": new_origin.url}, resent)
        tested = client.post(f"{url}/test", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["credentials"] == {"token": MASK}
    assert tested.status_code == 200, tested.get_json()
    assert new_origin.requests
    old = base64.b64encode(f"{MLFLOW_ADMIN}:{mlflow_server.password}".encode()).decode()
    for request in new_origin.requests:
        assert request.header("authorization") == "Bearer new-token-123"
        assert old not in str(request.headers) and mlflow_server.password not in str(request.headers)


def test_mlflow_same_server_keeps_omitted_and_masked_credentials(client, org, create_integration, mlflow_server):
    url = create_integration(
        "mlflow", {"tracking_uri": mlflow_server.url}, {"username": MLFLOW_ADMIN, "password": mlflow_server.password}
    )
    same = mlflow_server.url
    assert _put(client, org, url, "mlflow", {"tracking_uri": same}).status_code == 200
    masked = _put(client, org, url, "mlflow", {"tracking_uri": same}, {"username": MASK, "password": MASK})
    assert masked.status_code == 200 and masked.get_json()["credentials"] == {"username": MASK, "password": MASK}
    assert client.post(f"{url}/test", headers=org.headers).status_code == 200


@pytest.mark.parametrize(
    "config",
    [{"region_name": AWS_REGION, "endpoint_url": "NEW"}, {"region_name": "eu-west-1", "endpoint_url": "OLD"}],
    ids=["endpoint_url", "region_name"],
)
def test_sagemaker_move_without_keys_is_422(client, org, create_integration, moto, config):
    url = create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": moto}, AWS_KEYS)
    with CannedServer() as new_origin:
        moved = {**config, "endpoint_url": new_origin.url if config["endpoint_url"] == "NEW" else moto}
        response = _put(client, org, url, "sagemaker", moved, {"aws_access_key_id": MASK})
    assert response.status_code == 422
    assert _fields(response) == ["credentials.aws_access_key_id", "credentials.aws_secret_access_key"]
    assert new_origin.requests == []


def test_sagemaker_move_with_new_keys_signs_with_them(client, org, create_integration, moto):
    url = create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": moto}, AWS_KEYS)
    new_keys = {"aws_access_key_id": "AKIANEWKEY00000002", "aws_secret_access_key": "new-secret-access-key"}
    with CannedServer(200, {"ModelPackageGroupSummaryList": []}) as new_origin:
        response = _put(client, org, url, "sagemaker", {"region_name": AWS_REGION, "endpoint_url": new_origin.url},
                        new_keys)  # fmt: skip
        tested = client.post(f"{url}/test", headers=org.headers)
    assert response.status_code == 200 and tested.status_code == 200, tested.get_json()
    assert new_origin.requests
    for request in new_origin.requests:
        assert "Credential=AKIANEWKEY00000002/" in request.header("authorization")
        assert "AKIAOLDKEY00000001" not in str(request.headers)


def test_sagemaker_same_origin_keeps_omitted_keys(client, org, create_integration, moto):
    url = create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": moto}, AWS_KEYS)
    response = _put(client, org, url, "sagemaker", {"region_name": AWS_REGION, "endpoint_url": moto + "/"})
    assert response.status_code == 200, response.get_json()
    assert client.post(f"{url}/test", headers=org.headers).status_code == 200


def _vertex(api_endpoint: str | None, location: str = VERTEX_LOCATION) -> dict:
    config = {"project_id": VERTEX_PROJECT, "location": location}
    return config | ({"api_endpoint": api_endpoint} if api_endpoint else {})


def test_vertex_move_without_the_key_is_422(client, org, create_integration, vertex, service_account):
    url = create_integration("vertex_ai", _vertex(vertex.url), {"service_account_info": service_account})
    with CannedServer() as new_origin:
        response = _put(client, org, url, "vertex_ai", _vertex(new_origin.url))
    assert response.status_code == 422
    assert _fields(response) == ["credentials.service_account_info"]
    assert new_origin.requests == []


def test_vertex_location_moves_the_default_endpoint(client, org, create_integration, vertex, service_account):
    url = create_integration("vertex_ai", _vertex(None), {"service_account_info": service_account})
    moved = _put(client, org, url, "vertex_ai", _vertex(None, location="europe-west4"))
    kept = _put(client, org, url, "vertex_ai", _vertex("us-central1-aiplatform.googleapis.com:443"))
    assert moved.status_code == 422 and _fields(moved) == ["credentials.service_account_info"]
    assert kept.status_code == 200, "the explicit default endpoint is the same origin"


def test_vertex_move_with_a_new_key_uses_it(client, org, create_integration, vertex, service_account):
    url = create_integration("vertex_ai", _vertex(vertex.url), {"service_account_info": service_account})
    new_key, public_pem = new_service_account(vertex.token_uri, VERTEX_PROJECT)
    vertex.fake.public_keys.append(public_pem)
    vertex.fake.public_keys.remove(vertex.fake.public_keys[0])  # the old key no longer mints tokens
    with CannedServer(200, {}) as new_origin:
        response = _put(client, org, url, "vertex_ai", _vertex(new_origin.url), {"service_account_info": new_key})
        tested = client.post(f"{url}/test", headers=org.headers)
    assert response.status_code == 200 and tested.status_code == 200, tested.get_json()
    assert new_origin.requests
    assert all(r.header("authorization").removeprefix("Bearer ") in vertex.fake.tokens for r in new_origin.requests)
