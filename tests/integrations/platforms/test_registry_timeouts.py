"""Registry platforms that never answer, or trickle their answer: the live API calls (``GET
.../models``, ``POST .../test``) answer 504 problem+json within the client timeout or the deadline,
and a trickled call is stopped, not left running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import FakeServer, Reply, Request
from tests.integrations.conftest import AWS_REGION, VERTEX_LOCATION, VERTEX_PROJECT
from tests.support.polling import wait_until

DEADLINE = 2


class SilentPlatform(FakeServer):
    """Answers every request with an empty JSON object, unless a scripted fault says otherwise."""

    def route(self, request: Request) -> Reply:
        return Reply(200, {})


@pytest.fixture
def platform() -> Iterator[SilentPlatform]:
    with SilentPlatform() as server:
        yield server



def test_an_mlflow_that_never_answers_is_a_504_from_the_client_timeout(
    app, client, org, create_integration, platform, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    app.config["REGISTRY_CALL_DEADLINE_SECONDS"] = 20  # far off: the client's own timeout answers
    integration = create_integration("mlflow", {"tracking_uri": platform.url}, {})
    platform.script("hang", any_request=True)

    response = client.get(f"{integration}/models", headers=org.headers)

    assert response.status_code == 504
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["detail"].startswith("MLflow did not answer in time: ")
    assert "timed out" in response.get_json()["detail"]


@pytest.mark.parametrize("platform_type", ["mlflow", "sagemaker", "vertex_ai"])
def test_a_registry_that_never_answers_is_a_504_at_the_deadline(
    app, client, org, create_integration, platform, platform_type, request
):
    app.config["REGISTRY_CALL_DEADLINE_SECONDS"] = DEADLINE
    if platform_type == "mlflow":
        integration = create_integration("mlflow", {"tracking_uri": platform.url}, {})
    elif platform_type == "sagemaker":
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        integration = create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": platform.url}, keys)
    else:  # tokens from the Vertex AI fake, the API calls to the silent platform
        service_account = request.getfixturevalue("service_account")
        config = {"project_id": VERTEX_PROJECT, "location": VERTEX_LOCATION, "api_endpoint": platform.url}
        integration = create_integration("vertex_ai", config, {"service_account_info": service_account})
    platform.script(*["hang"] * 5, any_request=True)

    response = client.get(f"{integration}/models", headers=org.headers)

    assert response.status_code == 504
    assert response.get_json()["detail"] == f"The {platform_type} platform did not answer within {DEADLINE} s."


def test_a_registry_that_trickles_is_a_504_at_the_deadline_and_the_call_is_stopped(
    app, client, org, create_integration, platform
):
    app.config["REGISTRY_CALL_DEADLINE_SECONDS"] = DEADLINE
    integration = create_integration("mlflow", {"tracking_uri": platform.url}, {})
    platform.trickle_interval = 0.2  # each byte well inside MLflow's 10 s read timeout
    platform.script("trickle", any_request=True)

    response = client.post(f"{integration}/test", headers=org.headers)

    assert response.status_code == 504
    assert response.get_json()["detail"] == f"The mlflow platform did not answer within {DEADLINE} s."
    # The worker thread was interrupted and hung up, instead of reading on for minutes.
    wait_until(lambda: platform.abandoned == 1, 5, "the platform fake to notice the abandoned call")
