"""Schemathesis over /openapi.json: generated requests (valid and invalid) never get a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api import create_app
from store.db import session_scope
from store.organizations import create_api_key


@pytest.fixture
def fuzz_app(sqlite_url, prefect_server):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url})
    with session_scope(sqlite_url) as session:
        app.config["FUZZ_KEY"] = create_api_key(session, "acme")
    return app


def test_no_server_errors(fuzz_app):
    """Every operation, valid and invalid inputs, with a valid key of the path's organization."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_KEY']}"}
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case):
            if "organization_id" in (case.path_parameters or {}):
                case.path_parameters["organization_id"] = "acme"  # get past auth into validation and views
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
            if response.status_code >= 400:
                content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), content_type

        exercise()
        checked += 1
    assert checked >= 16


def test_openapi_document_is_generated_from_the_models(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    create = document["paths"]["/organizations/{organization_id}/integrations"]["post"]
    union = create["requestBody"]["content"]["application/json"]["schema"]
    assert {"oneOf", "discriminator"} <= set(union)
    sagemaker = document["components"]["schemas"]["SagemakerCredentials"]
    assert set(sagemaker["required"]) == {"aws_access_key_id", "aws_secret_access_key"}
    spec_paths = {
        ("get", "/organizations/{organization_id}/integrations"),
        ("get", "/organizations/{organization_id}/integrations/{integration_id}"),
        ("post", "/organizations/{organization_id}/integrations"),
        ("put", "/organizations/{organization_id}/integrations/{integration_id}"),
        ("delete", "/organizations/{organization_id}/integrations/{integration_id}"),
        ("get", "/organizations/{organization_id}/exports"),
        ("get", "/organizations/{organization_id}/exports/{export_id}"),
        ("post", "/organizations/{organization_id}/exports"),
        ("put", "/organizations/{organization_id}/exports/{export_id}"),
        ("delete", "/organizations/{organization_id}/exports/{export_id}"),
        ("get", "/organizations/{organization_id}/webhooks"),
        ("get", "/organizations/{organization_id}/webhooks/{webhook_id}"),
        ("post", "/organizations/{organization_id}/webhooks"),
        ("put", "/organizations/{organization_id}/webhooks/{webhook_id}"),
        ("delete", "/organizations/{organization_id}/webhooks/{webhook_id}"),
    }
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert spec_paths <= documented
    register = document["paths"]["/organizations/{organization_id}/integrations/{integration_id}/register-model"]
    answers = register["post"]["responses"]
    assert answers["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/RegisteredModelOut")
    assert answers["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/RunAccepted")
    assert "Location" in answers["202"]["headers"]
    # Operations that need a key say so (bearerAuth, the document's default); the public ones need none.
    assert document["security"] == [{"bearerAuth": []}]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "security" not in document["paths"]["/organizations/{organization_id}/webhooks"]["get"]
    assert document["servers"] == [{"url": "/"}]  # try-it-out calls the server that served the document
