"""Requests per minute per key: 429 problem+json with Retry-After, counted in the shared database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from api import create_app
from api.rate_limits import RateLimiter
from store.db import session_scope
from store.models import ApiKeyRequestCount
from store.organizations import create_api_key
from store.rate_limits import WINDOW_SECONDS, window_start


def _fresh_window(seconds_needed: float = 5.0) -> None:
    """Start within a one-minute window with ``seconds_needed`` left, so no count resets mid-test."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < seconds_needed:
        time.sleep(left + 0.05)


@pytest.fixture
def limited_client(database_url, prefect_server):
    """A client of an API limited to 5 requests a minute per key, and two keys of acme."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RATE_LIMIT_PER_MINUTE": 5})
    with session_scope(database_url) as session:
        keys = [create_api_key(session, "acme") for _ in range(2)]
    return app.test_client(), [{"Authorization": f"Bearer {key}"} for key in keys]


def test_past_the_limit_is_429_with_retry_after(limited_client):
    client, (headers, other_headers) = limited_client
    url = "/organizations/acme/webhooks"
    _fresh_window()
    for remaining in (4, 3, 2, 1, 0):
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "5"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
    refused = client.get(url, headers=headers)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    assert "5 requests a minute" in problem["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    # every path of the key counts, another organization's too; other keys have their own count
    assert client.get("/organizations/globex/webhooks", headers=headers).status_code == 429
    assert client.post(url, headers=headers, json={}).status_code == 429
    assert client.get(url, headers=other_headers).status_code == 200
    # the public endpoints are not limited
    for path in ("/health", "/openapi.json", "/docs", "/docs/assets/swagger-ui-bundle.js"):
        response = client.get(path)
        assert response.status_code == 200 and "RateLimit-Limit" not in response.headers


def test_zero_disables_the_limit(database_url, prefect_server):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RATE_LIMIT_PER_MINUTE": 0})
    with session_scope(database_url) as session:
        headers = {"Authorization": f"Bearer {create_api_key(session, 'acme')}"}
    client = app.test_client()
    for _ in range(10):
        response = client.get("/organizations/acme/webhooks", headers=headers)
        assert response.status_code == 200 and "RateLimit-Limit" not in response.headers


def test_429_is_documented_on_every_authenticated_operation(client):
    document = client.get("/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if operation.get("security") == []:
                assert "429" not in operation["responses"], path
            else:
                assert "Retry-After" in operation["responses"]["429"]["headers"], path


def _requests_counted(database_url: str, key_id: str, window: int) -> int:
    with session_scope(database_url) as session:
        return session.scalar(
            select(ApiKeyRequestCount.requests).where(
                ApiKeyRequestCount.key_id == key_id, ApiKeyRequestCount.window_start == window
            )
        )


@pytest.mark.parametrize(("limit", "batch"), [(20, 1), (400, 4)])
def test_processes_share_one_count_with_bounded_over_admission(database_url, limit, batch):
    """Two limiters are two API processes: together they admit the limit, plus at most batch - 1 each."""
    processes = [RateLimiter(limit, database_url), RateLimiter(limit, database_url)]
    assert {process.batch for process in processes} == {batch}
    now = window_start(time.time()) + 10.0  # one fixed moment: only full batches are flushed
    admitted = sum(processes[i % 2].admit("key_a", now=now).allowed for i in range(2 * limit))
    assert limit <= admitted <= limit + len(processes) * (batch - 1)
    # a new window starts a new count, and the old window's row is pruned by the next one after
    later = now + WINDOW_SECONDS
    assert processes[0].admit("key_a", now=later).allowed
    assert processes[0].admit("key_a", now=later + WINDOW_SECONDS).allowed
    with session_scope(database_url) as session:
        windows = session.scalars(select(ApiKeyRequestCount.window_start).order_by("window_start")).all()
    assert windows == [window_start(later), window_start(later + WINDOW_SECONDS)]


def test_requests_are_flushed_in_batches_or_each_second(database_url):
    limiter = RateLimiter(6000, database_url)
    assert limiter.batch == 50
    now = window_start(time.time()) + 1.0
    window = window_start(now)
    for _ in range(10):
        assert limiter.admit("key_b", now=now).allowed
    # the first request of a window is counted at once; the next nine wait for the batch or a second
    assert _requests_counted(database_url, "key_b", window) == 1
    decision = limiter.admit("key_b", now=now + 1.5)
    assert _requests_counted(database_url, "key_b", window) == 11
    assert decision.remaining == 6000 - 11
    for _ in range(50):
        limiter.admit("key_b", now=now + 1.6)
    assert _requests_counted(database_url, "key_b", window) == 61  # a full batch of 50 went at once


def test_another_process_count_is_seen_at_the_next_flush(database_url):
    first, second = RateLimiter(10, database_url), RateLimiter(10, database_url)
    now = window_start(time.time()) + 5.0
    for _ in range(10):
        assert first.admit("key_c", now=now).allowed
    refused = second.admit("key_c", now=now)
    assert not refused.allowed and refused.remaining == 0
    assert refused.headers()["Retry-After"] == str(WINDOW_SECONDS - 5)
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(ApiKeyRequestCount)) == 1
