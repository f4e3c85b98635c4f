"""What an unauthenticated request may cost: one indexed lookup per refused key or unknown inbound
integration, and nothing at all past ``MODELPULSE_AUTH_FAILURES_PER_MINUTE`` refusals a minute from
one client address (429 problem+json with Retry-After, before any lookup), counted across processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, inspect

from api import create_app
from api.errors import AUTHENTICATION_FAILURES
from store.db import get_engine, session_scope
from store.models import utcnow
from store.organizations import create_api_key, revoke_api_key
from tests.api.test_rate_limit import _fresh_window

INVALID = {"Authorization": "Bearer mpk_not-a-real-key"}


@contextmanager
def statements(database_url: str) -> Iterator[list[str]]:
    """The SQL statements run on the test's database meanwhile, lower-cased."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        seen.append(" ".join(statement.lower().split()))

    engine = get_engine(database_url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _lookups(seen: list[str], table: str) -> list[str]:
    return [s for s in seen if s.startswith("select") and f"from {table}" in s]


def _app(database_url: str, **config):
    return create_app({"TESTING": True, "DATABASE_URL": database_url, **config})


@pytest.fixture
def keys(database_url):
    with session_scope(database_url) as session:
        valid = create_api_key(session, "acme")
        revoked = create_api_key(session, "acme")
        expired = create_api_key(session, "acme", expires_at=utcnow() - timedelta(seconds=1))
        revoke_api_key(session, revoked, "test")
    return {
        name: {"Authorization": f"Bearer {key}"}
        for name, key in (("valid", valid), ("revoked", revoked), ("expired", expired))
    }


def test_a_refused_key_costs_one_indexed_lookup(database_url, prefect_server, keys):
    client = _app(database_url).test_client()
    for headers in (INVALID, INVALID, keys["revoked"], keys["expired"]):
        with statements(database_url) as seen:
            response = client.get("/organizations/acme/webhooks", headers=headers)
        assert response.status_code == 401
        [lookup] = _lookups(seen, "api_keys")
        assert "where api_keys.key_hash =" in lookup
        # Besides it, only the per-address count of refusals (one upsert) is written.
        others = [s for s in seen if s not in (lookup,)]
        assert all("api_key_request_counts" in s for s in others), others
    unique = {tuple(c["column_names"]) for c in inspect(get_engine(database_url)).get_unique_constraints("api_keys")}
    assert ("key_hash",) in unique  # the lookup is by a unique index
    with statements(database_url) as seen:
        assert client.get("/organizations/acme/webhooks").status_code == 401  # no key: nothing to look up
    assert seen == []


@pytest.mark.parametrize("platform", ["mlflow", "sagemaker"])
def test_an_unknown_inbound_integration_costs_one_primary_key_lookup(database_url, prefect_server, platform):
    client = _app(database_url).test_client()
    with statements(database_url) as seen:
        response = client.post(f"/inbound/{platform}/int_01jdx3k8v5c8m2y7q4n6t9w0ab", data=b"{}")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert len(seen) == 1 and "from integrations where integrations.id =" in seen[0], seen


def test_refused_keys_are_limited_per_client_address(database_url, prefect_server, keys):
    client = _app(database_url, AUTH_FAILURES_PER_MINUTE=3).test_client()
    attacker, bystander = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.9"}
    url = "/organizations/acme/webhooks"
    _fresh_window()
    for headers in (INVALID, keys["revoked"], keys["expired"]):
        assert client.get(url, headers=headers, environ_base=attacker).status_code == 401
    with statements(database_url) as seen:
        refused = [
            client.get(url, headers=headers, environ_base=attacker)
            for headers in (INVALID, keys["valid"], INVALID | {"X-Forwarded-For": "192.0.2.1"})
        ]
    for response in refused:
        assert response.status_code == 429, response.get_json()
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert problem["type"] == AUTHENTICATION_FAILURES and "3 invalid API keys a minute" in problem["detail"]
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert seen == []  # refused before any lookup, and nothing counted
    # a request without a key is no attempt; other addresses are not affected
    assert client.get(url, environ_base=attacker).status_code == 401
    assert client.get(url, headers=keys["valid"], environ_base=bystander).status_code == 200
    assert client.get(url, headers=INVALID, environ_base=bystander).status_code == 401


def test_the_limit_holds_across_processes(database_url, prefect_server):
    """Two apps (two API processes) on one database share each address's count; each may admit one
    refusal more than the limit before it has read the shared total."""
    first, second = (_app(database_url, AUTH_FAILURES_PER_MINUTE=4).test_client() for _ in range(2))
    url = "/organizations/acme/webhooks"
    _fresh_window()
    for client in (first, first, second, second):
        assert client.get(url, headers=INVALID).status_code == 401
    assert second.get(url, headers=INVALID).status_code == 429  # it read the shared total of 4
    assert first.get(url, headers=INVALID).status_code == 401  # it last read 2: one more, then it knows
    assert first.get(url, headers=INVALID).status_code == 429


def test_behind_trusted_proxies_the_forwarded_address_is_the_client(database_url, prefect_server):
    client = _app(database_url, AUTH_FAILURES_PER_MINUTE=1, TRUSTED_PROXIES=1).test_client()
    balancer = {"REMOTE_ADDR": "10.0.0.2"}
    url = "/organizations/acme/webhooks"
    _fresh_window()

    def attempt(forwarded: str) -> int:
        return client.get(url, headers=INVALID | {"X-Forwarded-For": forwarded}, environ_base=balancer).status_code

    assert attempt("203.0.113.7") == 401
    assert attempt("203.0.113.7") == 429
    assert attempt("198.51.100.9") == 401  # another client behind the same balancer
    # A client cannot pick its address: only the entry the balancer appended is trusted.
    assert attempt("198.51.100.1, 203.0.113.7") == 429


def test_off_when_zero(database_url, prefect_server):
    client = _app(database_url, AUTH_FAILURES_PER_MINUTE=0).test_client()
    for _ in range(40):
        assert client.get("/organizations/acme/webhooks", headers=INVALID).status_code == 401
