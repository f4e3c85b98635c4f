"""API keys through their life: `modelpulse keys create/list/revoke`, expiry, revocation, last use."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.key_cache import KeyCache
from stack.cli import main
from store.db import session_scope
from store.models import ApiKey, utcnow
from store.organizations import create_api_key, hash_key, revoke_api_key
from tests.support.polling import wait_until


@pytest.fixture
def cli(database_url, monkeypatch):
    """Run `modelpulse ...` in this process against the test's database."""
    from store.settings import get_settings

    monkeypatch.setenv("MODELPULSE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(main, list(args))
    get_settings.cache_clear()


def _key_row(database_url: str, key_id: str) -> ApiKey:
    with session_scope(database_url) as session:
        return session.get(ApiKey, key_id)


def _listed(result) -> dict[str, dict[str, str]]:
    """`keys list` parsed: key id -> {column: value} (columns are two or more spaces apart)."""
    lines = result.stdout.splitlines()
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"(?:^|(?<=  ))\S", header)]
    names = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
    rows = {}
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows


def _id_of(database_url: str, key: str) -> str:
    with session_scope(database_url) as session:
        return session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key)))


def test_create_list_revoke_records_who_and_when(cli, database_url):
    created = cli("keys", "create", "acme", "--expires-in", "2", "--by", "alice@laptop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"mpk_[A-Za-z0-9_-]{40,}", key) and created.stdout == key + "\n"
    other = cli("keys", "create", "acme").stdout.strip()  # --by defaults to the OS user@hostname
    key_id, other_id = _id_of(database_url, key), _id_of(database_url, other)

    listed = cli("keys", "list", "acme")
    assert listed.exit_code == 0, listed.output
    assert key not in listed.output and other not in listed.output
    assert hash_key(key) not in listed.output and hash_key(other) not in listed.output
    rows = _listed(listed)
    assert list(rows) == [key_id, other_id]
    first = rows[key_id]
    assert first["PREFIX"] == key[:12] + "..." and first["ROLE"] == "admin"  # the default role
    assert first["CREATED BY"] == "alice@laptop" and first["STATUS"] == "active"
    assert first["LAST USED"] == "-" and first["REVOKED AT"] == "-" and first["REVOKED BY"] == "-"
    expires = _key_row(database_url, key_id).expires_at
    assert timedelta(days=1.99) < expires - utcnow() <= timedelta(days=2)
    assert first["EXPIRES"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert re.fullmatch(r".+@.+", rows[other_id]["CREATED BY"]) and rows[other_id]["EXPIRES"] == "-"

    revoked = cli("keys", "revoke", key_id, "--by", "bob@ops")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.startswith(f"revoked {key_id} ") and "bob@ops" in revoked.stdout
    again = cli("keys", "revoke", key_id, "--by", "carol@ops")
    assert again.exit_code == 0 and "already revoked" in again.stdout and "bob@ops" in again.stdout
    row = _key_row(database_url, key_id)
    assert row.revoked_by == "bob@ops" and row.revoked_at is not None  # the first revocation stands

    # the plaintext key itself, which is never echoed back
    by_key = cli("keys", "revoke", other)
    assert by_key.exit_code == 0 and f"revoked {other_id} " in by_key.stdout and other not in by_key.output

    rows = _listed(cli("keys", "list", "acme"))
    assert rows[key_id]["STATUS"] == "revoked" and rows[key_id]["REVOKED BY"] == "bob@ops"
    assert rows[key_id]["REVOKED AT"] == row.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows[other_id]["STATUS"] == "revoked"


def test_create_with_a_role_which_the_api_enforces_and_list_shows(cli, database_url, client):
    keys = {}
    for role in ("viewer", "publisher", "admin"):
        created = cli("keys", "create", "acme", "--role", role)
        assert created.exit_code == 0, created.output
        keys[role] = created.stdout.strip()
    rows = _listed(cli("keys", "list", "acme"))
    assert {role: rows[_id_of(database_url, key)]["ROLE"] for role, key in keys.items()} == {
        "viewer": "viewer",
        "publisher": "publisher",
        "admin": "admin",
    }
    headers = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    webhooks = "/organizations/acme/webhooks"
    assert client.get(webhooks, headers=headers["viewer"]).status_code == 200
    refused = client.post(webhooks, headers=headers["viewer"], json={})
    assert refused.status_code == 403 and refused.get_json()["allowed_roles"] == ["admin"]
    assert "'viewer'" in refused.get_json()["detail"] and "'admin'" in refused.get_json()["detail"]
    assert client.get(webhooks, headers=headers["publisher"]).status_code == 403
    assert client.post(webhooks, headers=headers["admin"], json={}).status_code == 422


def test_list_shows_expired_keys(cli, database_url):
    with session_scope(database_url) as session:
        key = create_api_key(session, "acme", created_by="test", expires_at=utcnow() - timedelta(seconds=1))
    rows = _listed(cli("keys", "list", "acme"))
    assert rows[_id_of(database_url, key)]["STATUS"] == "expired"


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (("keys", "create", "no spaces"), 2, "ORGANIZATION_ID"),
        (("keys", "create", "acme", "--expires-in", "0"), 2, "--expires-in"),
        (("keys", "create", "acme", "--expires-in", "-1"), 2, "--expires-in"),
        (("keys", "create", "acme", "--expires-in", "soon"), 2, "--expires-in"),
        (("keys", "create", "acme", "--expires-in", "1e9"), 2, "--expires-in"),
        (("keys", "create", "acme", "--by", " "), 2, "--by"),
        (("keys", "create", "acme", "--role", "owner"), 2, "--role"),
        (("keys", "create", "acme", "--role", ""), 2, "--role"),
        (("keys", "list", "no spaces"), 2, "ORGANIZATION_ID"),
        (("keys", "list", "nobody"), 1, "no organization 'nobody'"),
        (("keys", "revoke", "something"), 2, "KEY_ID_OR_KEY"),
        (("keys", "revoke", "key_01jdx3k8v5c8m2y7q4n6t9w0ab"), 1, "no API key matches key_01jdx3k8v5c8m2y7q4n6t9w0ab"),
        (("keys", "revoke", "mpk_not-a-key-anyone-has"), 1, "no API key matches the given key"),
    ],
)
def test_cli_errors_are_messages(cli, args, exit_code, message):
    result = cli(*args)
    assert result.exit_code == exit_code, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""
    assert "mpk_not-a-key" not in result.stderr


def test_cli_database_failure_is_a_message(monkeypatch):
    from store.settings import get_settings

    monkeypatch.setenv("MODELPULSE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["keys", "list", "acme"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and result.stderr.startswith("Error: database error:"), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _wait_for_status(client, url, headers, status, deadline_seconds=10.0):
    def answered():
        response = client.get(url, headers=headers)
        response.close()
        return response.status_code == status and response

    return wait_until(answered, deadline_seconds, f"{url} to answer {status}", every=0.1)


def test_revoked_key_is_refused(client, org, database_url):
    url = f"/organizations/{org.id}/webhooks"
    assert client.get(url, headers=org.headers).status_code == 200
    with session_scope(database_url) as session:
        revoke_api_key(session, org.key, "test")
    response = _wait_for_status(client, url, org.headers, 401)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "The API key has been revoked.",
    }
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # and it stays refused, on every path
    for _ in range(20):
        assert client.get(url, headers=org.headers).status_code == 401
    assert client.get("/organizations/other/webhooks", headers=org.headers).status_code == 401


def test_expiry_is_checked_at_every_request_even_when_cached(app, client, database_url):
    # A cache that would trust its answer for an hour: only the per-request expiry check can refuse.
    app.extensions["key_cache"] = KeyCache(ttl=3600)
    with session_scope(database_url) as session:
        key = create_api_key(session, "acme", created_by="test", expires_at=utcnow() + timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {key}"}
    url = "/organizations/acme/webhooks"
    assert client.get(url, headers=headers).status_code == 200
    response = _wait_for_status(client, url, headers, 401)
    assert response.status_code == 401
    assert response.get_json()["detail"] == "The API key has expired."


def test_key_cache_reuses_answers_for_its_ttl(database_url):
    with session_scope(database_url) as session:
        key = create_api_key(session, "acme")
    cached, uncached = KeyCache(ttl=3600), KeyCache(ttl=0)
    with session_scope(database_url) as session:
        assert not cached.lookup(session, key).revoked and not uncached.lookup(session, key).revoked
        revoke_api_key(session, key, "test")
    with session_scope(database_url) as session:
        assert not cached.lookup(session, key).revoked  # the answer read before the revocation
        assert uncached.lookup(session, key).revoked
        assert cached.lookup(session, "mpk_unknown") is None


def test_unknown_key_detail_says_nothing_more(client, org):
    response = client.get(f"/organizations/{org.id}/webhooks", headers={"Authorization": "Bearer mpk_nope"})
    assert response.status_code == 401 and response.get_json()["detail"] == "The API key is invalid."


def test_last_use_is_recorded_once_a_minute_and_only_on_its_own_organization(client, org, make_key, database_url):
    key_id = _id_of(database_url, org.key)
    # another organization's path: a 404, and no trace of the use
    client.get("/organizations/globex/webhooks", headers=org.headers).close()
    assert _key_row(database_url, key_id).last_used_at is None

    before = utcnow()
    response = client.get(f"/organizations/{org.id}/webhooks", headers=org.headers)
    assert response.status_code == 200
    response.close()  # the write happens once the response is sent
    first = _key_row(database_url, key_id).last_used_at
    assert first is not None and before - timedelta(seconds=1) <= first <= utcnow()

    for _ in range(5):
        client.get(f"/organizations/{org.id}/webhooks", headers=org.headers).close()
    assert _key_row(database_url, key_id).last_used_at == first
