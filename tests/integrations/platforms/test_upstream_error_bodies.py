"""A registry (or a proxy in front of it, or a metadata service a URL was pointed at) that answers an
HTML page: none of its text reaches /models, /test or register-model answers; a JSON error's
documented fields do, at most 300 characters each."""

from __future__ import annotations

import json
import re

import pytest

from tests.fakes.canned import CannedServer, html_page
from tests.fakes.vertex_ai import new_service_account
from tests.integrations.conftest import AWS_REGION, VERTEX_LOCATION, VERTEX_PROJECT

LONG = 5000
AWS_KEYS = {"aws_access_key_id": "AKIATESTKEY0000001", "aws_secret_access_key": "secret-access-key"}
REGISTRATIONS = {
    "mlflow": {"name": "m", "source": "s3://bucket/m/1"},
    "sagemaker": {"name": "m", "model_package_group": "m", "image_uri": "i:1", "model_data_url": "s3://b/m.tar.gz"},
    "vertex_ai": {"name": "m", "artifact_uri": "gs://b/m", "serving_container_image_uri": "i:1"},
}


@pytest.fixture
def integration_at(create_integration, vertex, service_account):
    """``integration_at(type, url)``: an integration whose platform calls go to ``url``."""

    def create(type_: str, url: str) -> str:
        if type_ == "mlflow":
            return create_integration("mlflow", {"tracking_uri": url}, {"username": "u", "password": "p"})
        if type_ == "sagemaker":
            return create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": url}, AWS_KEYS)
        config = {"project_id": VERTEX_PROJECT, "location": VERTEX_LOCATION, "api_endpoint": url}
        return create_integration("vertex_ai", config, {"service_account_info": service_account})

    return create


def _longest_run(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(f"{re.escape(char)}+", text)), default=0)


@pytest.mark.parametrize("type_", ["mlflow", "sagemaker", "vertex_ai"])
@pytest.mark.parametrize("status", [400, 403, 500])
def test_an_html_error_page_reaches_no_answer(client, org, integration_at, type_, status):
    marker, page = html_page(status)
    with CannedServer(status, page) as upstream:
        url = integration_at(type_, upstream.url)
        answers = [client.get(f"{url}/models", headers=org.headers), client.post(f"{url}/test", headers=org.headers)]

    assert upstream.requests, "the platform was asked"
    for answer in answers:
        assert answer.status_code == 502, answer.get_json()
        assert marker not in json.dumps(answer.get_json()) and "<html" not in answer.get_json()["detail"]
        assert "omitted" in answer.get_json()["detail"] or "too many" in answer.get_json()["detail"]
    assert marker not in json.dumps(client.get(url, headers=org.headers).get_json())


@pytest.mark.parametrize("type_", ["mlflow", "sagemaker", "vertex_ai"])
def test_register_model_answers_carry_no_html(client, org, integration_at, type_):
    marker, page = html_page(403)
    with CannedServer(403, page) as upstream:
        url = integration_at(type_, upstream.url)
        response = client.post(f"{url}/register-model", json=REGISTRATIONS[type_], headers=org.headers)
        run_id = re.search(r"flow run ([0-9a-f-]{36})", response.get_json()["detail"]).group(1)
        status = client.get(f"{url}/registrations/{run_id}", headers=org.headers)
    assert response.status_code == 502 and "omitted" in response.get_json()["detail"]
    assert marker not in json.dumps([response.get_json(), status.get_json()])
    assert len(upstream.requests) == 1, "a 403 is final: asked once, not again on each of the task's retries"


# type -> (a JSON error answer with a 5,000-character documented field, that field's character, a field name)
JSON_ERRORS = {
    "mlflow": ({"error_code": "INVALID_PARAMETER_VALUE", "message": "m" * LONG}, "m", "INVALID_PARAMETER_VALUE"),
    "sagemaker": ({"__type": "ValidationException", "message": "v" * LONG}, "v", "ValidationException"),
    "vertex_ai": ({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "g" * LONG}}, "g",
                  "INVALID_ARGUMENT"),
}  # fmt: skip


@pytest.mark.parametrize("type_", list(JSON_ERRORS))
def test_documented_json_fields_are_shown_bounded(client, org, integration_at, type_):
    body, char, name = JSON_ERRORS[type_]
    with CannedServer(400, body) as upstream:
        url = integration_at(type_, upstream.url)
        detail = client.get(f"{url}/models", headers=org.headers).get_json()["detail"]
    assert name in detail and 200 <= _longest_run(detail, char) <= 300, detail


def test_an_html_token_endpoint_reaches_no_answer(client, org, create_integration, vertex):
    marker, page = html_page(403)
    with CannedServer(403, page) as token_endpoint:
        key, _ = new_service_account(f"{token_endpoint.url}/token", VERTEX_PROJECT)
        config = {"project_id": VERTEX_PROJECT, "location": VERTEX_LOCATION, "api_endpoint": vertex.url}
        url = create_integration("vertex_ai", config, {"service_account_info": key})
        answer = client.get(f"{url}/models", headers=org.headers)
    assert token_endpoint.requests and answer.status_code == 502
    assert marker not in json.dumps(answer.get_json()) and "token endpoint" in answer.get_json()["detail"]
