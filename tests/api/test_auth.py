"""Bearer keys: 401 without a valid key, 404 for another organization's paths and resources."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.api.bodies import body

PLACEHOLDER = re.compile(r"{([a-z_]+)}")


def _organization_operations(client):
    document = client.get("/openapi.json").get_json()
    for path, operations in document["paths"].items():
        if path.startswith("/organizations/{organization_id}"):
            for method in operations:
                yield method, path


def _fill(path: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), "unknown-id"), path)


@pytest.fixture
def two_orgs(client, org, make_key):
    """acme owns one integration, export and webhook; globex has a key of its own."""
    ids = {"organization_id": org.id}
    for collection, key, payload in (
        ("integrations", "integration_id", body("integrations", "mlflow")),
        ("exports", "export_id", body("exports", "splunk")),
        ("webhooks", "webhook_id", body("webhooks")),
    ):
        response = client.post(f"/organizations/{org.id}/{collection}", json=payload, headers=org.headers)
        ids[key] = response.get_json()["id"]
    return ids, {"Authorization": f"Bearer {make_key('globex')}"}


def test_every_endpoint_needs_a_key(client, two_orgs):
    ids, _ = two_orgs
    # More refused keys than one address may send a minute; test_failed_authentications_are_limited covers that.
    client.application.extensions["auth_failure_limiter"] = None
    operations = list(_organization_operations(client))
    assert len(operations) >= 15
    for method, path in operations:
        url = _fill(path, ids)
        for headers in ({}, {"Authorization": "Bearer mpk_not-a-real-key"}, {"Authorization": "Basic abc"}):
            response = client.open(url, method=method.upper(), headers=headers, json={})
            assert response.status_code == 401, (method, url, headers)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.mimetype == "application/problem+json"


def test_other_organizations_paths_and_resources_are_404(client, org, two_orgs):
    ids, globex = two_orgs
    for method, path in _organization_operations(client):
        # globex's key on acme's path
        response = client.open(_fill(path, ids), method=method.upper(), headers=globex, json={})
        assert response.status_code == 404, (method, path)
        # globex's key on its own path, naming acme's resources
        if PLACEHOLDER.findall(path)[1:]:
            own_path = _fill(path, ids | {"organization_id": "globex"})
            response = client.open(own_path, method=method.upper(), headers=globex, json={})
            assert response.status_code == 404, (method, own_path)
    # and acme still sees its own
    assert client.get(f"/organizations/{org.id}/webhooks/{ids['webhook_id']}", headers=org.headers).status_code == 200


def test_cli_creates_a_key_printed_alone(database_url, client):
    env = {"MODELPULSE_DATABASE_URL": database_url}
    import os

    result = subprocess.run(
        [sys.executable, "-m", "stack.cli", "keys", "create", "initech"],
        capture_output=True,
        text=True,
        env=os.environ | env,
        check=True,
    )
    key = result.stdout.strip()
    assert re.fullmatch(r"mpk_[A-Za-z0-9_-]{40,}", key), result.stdout
    response = client.get("/organizations/initech/webhooks", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    bad = subprocess.run(
        [sys.executable, "-m", "stack.cli", "keys", "create", "no spaces allowed"],
        capture_output=True,
        text=True,
        env=os.environ | env,
    )
    assert bad.returncode != 0 and "ORGANIZATION_ID" in bad.stderr and bad.stdout == ""
