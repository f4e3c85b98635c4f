"""PostgreSQL connections from the pool (``store.db.check_on_checkout``): one the server ended is replaced
before it is handed out; one used moments ago is handed out without a round trip; one idle past the
limit is pinged first."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

import store.db
from store.db import make_engine
from tests.support.databases import terminate_backend


@pytest.fixture
def engine(postgres_admin_url) -> Iterator[Engine]:
    engine = make_engine(postgres_admin_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(engine, monkeypatch) -> list[float]:
    """The pings the engine sends (``SELECT 1``), each still sent."""
    sent: list[float] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection) -> bool:
        sent.append(time.monotonic())
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return sent


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_the_server_ended_is_replaced_before_it_is_handed_out(engine, pings, postgres_admin_url):
    ended = backend_pid(engine)
    terminate_backend(postgres_admin_url, ended)

    replacement = backend_pid(engine)  # without the check: "terminating connection due to administrator command"

    assert replacement != ended
    assert len(pings) == 1, "its socket said it had ended: pinged, failed, replaced"


def test_a_connection_used_moments_ago_is_handed_out_without_a_ping(engine, pings):
    first = backend_pid(engine)
    again = [backend_pid(engine) for _ in range(5)]

    assert again == [first] * 5
    assert pings == []


def test_a_connection_idle_past_the_limit_is_pinged_first(engine, pings, monkeypatch):
    first = backend_pid(engine)
    monkeypatch.setattr(store.db, "PING_AFTER_IDLE_SECONDS", 0.0)

    assert backend_pid(engine) == first
    assert len(pings) == 1
