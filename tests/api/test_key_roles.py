"""Key roles on every operation: the operations come from the Flask route table, never a hand list.

A viewer reads (every GET and HEAD) and nothing else; a publisher only sends events and inference
logs; an admin does everything, as every key did before roles. A refusal is 403 problem+json of type
insufficient-role, naming the key's role and the roles that would do.
"""

from __future__ import annotations

import re

import pytest

from api.errors import INSUFFICIENT_ROLE
from api.permissions import roles_allowed
from store.db import session_scope
from store.event_catalog import CATALOG
from store.organizations import create_api_key

PLACEHOLDER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
PUBLISHED = {
    ("POST", "/organizations/<organization_id>/events"),
    ("POST", "/organizations/<organization_id>/inference-logs"),
}


def organization_operations(app) -> list[tuple[str, str]]:
    """(method, rule) of every key-authenticated operation, HEAD included, from the route table."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/organizations/<organization_id>"):
            found += [(method, rule.rule) for method in sorted(rule.methods - {"OPTIONS"})]
    return found


def _url(rule: str) -> str:
    # Records that do not exist: the role is decided before any record is looked up.
    return PLACEHOLDER.sub(lambda m: "acme" if m.group(1) == "organization_id" else "unknown-id", rule)


@pytest.fixture
def role_headers(database_url):
    with session_scope(database_url) as session:
        keys = {role: create_api_key(session, "acme", role=role) for role in ("admin", "publisher", "viewer")}
    return {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}


def _call(client, method: str, rule: str, headers: dict[str, str]):
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.open(_url(rule), method=method, headers=headers, json=body)


def test_the_route_table_has_the_operations_the_roles_speak_of(app):
    operations = organization_operations(app)
    assert len(operations) >= 50
    assert PUBLISHED <= set(operations)
    writes = [(m, r) for m, r in operations if m not in ("GET", "HEAD")]
    assert len(writes) >= 20 and any(m == "GET" for m, _ in operations)


def test_a_viewer_reads_everything_and_changes_nothing(app, client, role_headers):
    for method, rule in organization_operations(app):
        response = _call(client, method, rule, role_headers["viewer"])
        if method in ("GET", "HEAD"):
            assert response.status_code != 403, (method, rule, response.status_code)
        else:
            assert response.status_code == 403, (method, rule, response.status_code)
            problem = response.get_json()
            assert response.mimetype == "application/problem+json"
            assert problem["type"] == INSUFFICIENT_ROLE and problem["role"] == "viewer"
            assert "admin" in problem["allowed_roles"] and "'viewer'" in problem["detail"]
    assert client.get("/organizations/acme/webhooks", headers=role_headers["viewer"]).status_code == 200


def test_a_publisher_only_sends_events_and_inference_logs(app, client, role_headers):
    for method, rule in organization_operations(app):
        response = _call(client, method, rule, role_headers["publisher"])
        if (method, rule) in PUBLISHED:
            assert response.status_code == 422, (method, rule, response.get_json())  # past the role, into validation
        else:
            assert response.status_code == 403, (method, rule, response.status_code)
            if method != "HEAD":  # a HEAD answer has no body
                assert response.get_json()["role"] == "publisher"
    entry = next(e for e in CATALOG if e.publishable)
    event = {"type": entry.type, "data": entry.example}
    accepted = client.post("/organizations/acme/events", json=event, headers=role_headers["publisher"])
    assert accepted.status_code == 202, accepted.get_json()


def test_an_admin_is_never_refused_for_its_role(app, client, role_headers):
    # Deletions last, so each record the others need is still there (the ids are unknown anyway).
    for method, rule in sorted(organization_operations(app), key=lambda op: op[0] == "DELETE"):
        response = _call(client, method, rule, role_headers["admin"])
        assert response.status_code != 403, (method, rule, response.status_code)


def test_another_organizations_path_is_still_404_whatever_the_role(client, role_headers, make_key):
    make_key("globex")
    for headers in role_headers.values():
        assert client.delete("/organizations/globex/webhooks/unknown-id", headers=headers).status_code == 404


def test_openapi_documents_the_roles_of_every_operation(app, client):
    document = client.get("/openapi.json").get_json()
    documented = 0
    for method, rule in organization_operations(app):
        if method == "HEAD":
            continue
        operation = document["paths"][PLACEHOLDER.sub(r"{\1}", rule)][method.lower()]
        allowed = list(roles_allowed(method, rule))
        assert operation["x-modelpulse-roles"] == allowed, (method, rule)
        assert "API key roles allowed: " + ", ".join(f"`{r}`" for r in allowed) in operation["description"]
        assert "403" in operation["responses"], (method, rule)
        documented += 1
    assert documented >= 40
    assert document["paths"]["/inbound/mlflow/{integration_id}"]["post"].get("x-modelpulse-roles") is None
