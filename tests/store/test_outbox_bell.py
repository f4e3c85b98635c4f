"""The outbox bell rings when an event commits (PostgreSQL: the event's NOTIFY; SQLite: the files
changed) and not while nothing is written; a waiter that noted the generation before a commit wakes.
Unrung, a wait lasts the quiet period while the bell hears commits, and the short fallback while it
cannot."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import make_url

from store.db import session_scope
from store.events import record_event
from store.models import Organization
from store.outbox_bell import CHANNEL, OutboxBell

DATA = {"model": "churn", "metric": "psi", "value": 0.3}


@pytest.fixture(autouse=True)
def organization(database_url) -> None:
    with session_scope(database_url) as session:
        session.merge(Organization(id="acme"))


def commit_event(database_url: str) -> None:
    with session_scope(database_url) as session:
        record_event(session, "acme", "drift.detected", DATA)


async def rung_within(bell: OutboxBell, seen: int, seconds: float) -> bool:
    started = time.monotonic()
    await bell.wait(seen, seconds)
    return bell.generation != seen and time.monotonic() - started < seconds


def test_a_commit_rings_the_bell_and_silence_does_not(database_url):
    async def scenario() -> None:
        async with OutboxBell(database_url, check_seconds=0.02, fallback_seconds=5) as bell:
            await asyncio.sleep(0.5)  # listening (PostgreSQL) / a first look at the files (SQLite)
            seen = bell.generation
            assert not await rung_within(bell, seen, 0.5), "nothing was written"

            seen = bell.generation  # noted before the commit, as the dispatcher notes it before a read
            await asyncio.to_thread(commit_event, database_url)
            assert await rung_within(bell, seen, 2.0)

    asyncio.run(scenario())


def test_on_postgresql_a_rolled_back_event_rings_nothing(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no notification: any write to its files rings")

    def roll_back() -> None:
        with pytest.raises(RuntimeError), session_scope(database_url) as session:
            record_event(session, "acme", "drift.detected", DATA)
            session.flush()
            raise RuntimeError("the producer's transaction fails")

    async def scenario() -> None:
        async with OutboxBell(database_url, fallback_seconds=5) as bell:
            await asyncio.sleep(0.5)
            seen = bell.generation
            await asyncio.to_thread(roll_back)
            assert not await rung_within(bell, seen, 1.0)

    asyncio.run(scenario())


def test_without_a_watcher_the_wait_is_the_fallback(database_url):  # noqa: ARG001 (the autouse fixture's)
    async def scenario() -> float:
        async with OutboxBell("mysql://nobody@127.0.0.1/none", fallback_seconds=0.2) as bell:
            started = time.monotonic()
            await bell.wait(bell.generation)
            return time.monotonic() - started

    assert 0.19 < asyncio.run(scenario()) < 1.0


def test_an_unrung_wait_lasts_the_quiet_period_while_the_bell_hears_commits(database_url):
    async def scenario() -> float:
        async with OutboxBell(database_url, check_seconds=0.02, fallback_seconds=0.1, quiet_seconds=0.8) as bell:
            await asyncio.sleep(0.5)
            assert bell.hearing
            started = time.monotonic()
            await bell.wait(bell.generation)
            return time.monotonic() - started

    assert 0.75 < asyncio.run(scenario()) < 2.0, "an idle dispatcher would read the outbox every fallback"


def test_while_postgresql_cannot_be_listened_to_the_wait_is_the_fallback(database_url):  # noqa: ARG001
    async def scenario() -> float:
        # Nothing listens on port 1: every LISTEN connection is refused at once.
        async with OutboxBell(
            "postgresql+psycopg://nobody@127.0.0.1:1/none", fallback_seconds=0.2, quiet_seconds=30
        ) as bell:
            await asyncio.sleep(0.3)
            assert not bell.hearing
            started = time.monotonic()
            await bell.wait(bell.generation)
            return time.monotonic() - started

    assert 0.19 < asyncio.run(scenario()) < 1.0


def test_on_postgresql_a_burst_of_commits_does_not_hold_the_bell_back(database_url):
    """Notifications heard within one ring's random delay share that ring: the bell keeps up with a
    busy outbox instead of waiting out a delay per commit (1,000 commits x up to 50 ms: ~25 s behind)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no notification: any write to its files rings")

    def notify_burst(count: int) -> None:
        import psycopg

        conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            for _ in range(count):
                connection.execute(f"NOTIFY {CHANNEL}")  # each in a transaction of its own, as each event's

    async def quiet_within(bell: OutboxBell, seconds: float, quiet_seconds: float) -> bool:
        """Whether the bell stops ringing for ``quiet_seconds`` at some point within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not await rung_within(bell, bell.generation, quiet_seconds):
                return True
        return False

    async def scenario() -> None:
        async with OutboxBell(database_url, check_seconds=0.05, fallback_seconds=60) as bell:
            await asyncio.sleep(0.5)
            before = bell.generation
            await asyncio.to_thread(notify_burst, 1000)
            # Caught up soon after the burst, not ringing through a backlog for ~25 s.
            assert await quiet_within(bell, 10.0, 0.5), "the bell fell behind the notifications"
            assert bell.generation - before < 1000  # commits heard together rang together
            seen = bell.generation
            await asyncio.to_thread(commit_event, database_url)
            assert await rung_within(bell, seen, 2.0)

    asyncio.run(scenario())
