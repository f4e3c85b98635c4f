"""Roles (``store.roles``): one holder at a time among every process on a PostgreSQL database; the next
takes the role once its holder releases it or its connection ends; SQLite gives every process every role.
And the dispatchers' use of one: which of them reads the outbox."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.event import listen, remove

from flows.fan_out import HELP_SECONDS, WAITED_SECONDS, Dispatcher
from store.db import forget_engines, session_scope
from store.deliveries import claim_events
from store.event_catalog import BY_TYPE
from store.events import record_event
from store.ids import new_id
from store.models import Organization, utcnow
from store.roles import LOCK_CLASS, Role
from store.settings import get_settings
from tests.support.databases import terminate_backend

DRIFT = BY_TYPE["drift.detected"].example


def _holder_pid(admin_url: str, role: Role) -> int:
    """The server process (backend) whose session holds ``role``'s lock."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return connection.execute(
                text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND classid = :class AND objid = :key"),
                {"class": LOCK_CLASS & 0xFFFFFFFF, "key": role.key & 0xFFFFFFFF},
            ).scalar_one()  # fmt: skip
    finally:
        admin.dispose()


def test_a_role_has_one_holder_and_the_next_takes_it_once_released(postgres_admin_url):
    first, second = Role("publisher", postgres_admin_url), Role("publisher", postgres_admin_url)
    try:
        assert first.held()
        assert not second.held()
        assert first.held(), "the holder keeps it"
        assert not second.held()

        first.release()
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()


def test_a_holder_whose_connection_ended_learns_it_and_another_takes_over(postgres_admin_url):
    """The server ended the holder's session (its process died, a failover, an idle timeout): the lock went
    with it, another process takes the role, and the old holder says no the next time it asks."""
    first, second = Role("publisher", postgres_admin_url), Role("publisher", postgres_admin_url)
    try:
        assert first.held()
        terminate_backend(postgres_admin_url, _holder_pid(postgres_admin_url, first))
        assert second.held()
        assert not first.held()
        assert not first.held(), "asking again, on a new connection: still the other's"
    finally:
        first.release()
        second.release()


def test_roles_of_different_names_are_held_apart(postgres_admin_url):
    publisher, other = Role("publisher", postgres_admin_url), Role("another role", postgres_admin_url)
    try:
        assert publisher.held() and other.held()
    finally:
        publisher.release()
        other.release()


def test_on_sqlite_every_process_holds_every_role(tmp_path):
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    assert Role("publisher", url).held() and Role("publisher", url).held()


def test_one_dispatcher_reads_the_outbox_and_another_helps_only_while_events_wait(database_url, monkeypatch, caplog):
    """The dispatchers' ``outbox-reader`` role (flows/fan_out.py): its holder reads the outbox on every
    commit; another only looks now and then, and reads on every commit too once an event it saw at one look
    still waits at the next (the reader is behind, or gone); it takes the role once the holder lets go."""
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    forget_engines()
    reader, follower = Dispatcher(0.05, 1000, 50), Dispatcher(0.05, 1000, 50)
    with session_scope(database_url) as session:
        session.merge(Organization(id="acme"))

    def accept_event(ago: float = 0.0) -> str:
        """An event accepted ``ago`` seconds before now (by the clock in its id)."""
        event_id = new_id("evt", utcnow() - timedelta(seconds=ago))
        with session_scope(database_url) as session:
            return record_event(session, "acme", "drift.detected", DRIFT, event_id=event_id).id

    async def scenario() -> None:
        assert await reader.reads_outbox()
        if database_url.startswith("sqlite"):  # one machine's file, no advisory locks: every dispatcher reads
            assert await follower.reads_outbox()
            return
        assert not await follower.reads_outbox()

        # At rest: a look that found nothing is not repeated until the outbox bell hears a commit.
        bell, outbox_reads = SimpleNamespace(generation=1, hearing=True), []

        def count(_connection, _cursor, statement, *_) -> None:
            if "FROM events" in statement:
                outbox_reads.append(statement)

        listen(Engine, "before_cursor_execute", count)
        try:
            await follower.look_for_waiting_events(bell)
            await follower.look_for_waiting_events(bell)
            assert len(outbox_reads) == 1
            bell.generation += 1
            await follower.look_for_waiting_events(bell)
            assert len(outbox_reads) == 2
        finally:
            remove(Engine, "before_cursor_execute", count)

        # An event the reader claims within WAITED_SECONDS: the follower keeps to itself.
        taken = accept_event()
        await follower.look_for_waiting_events()
        with session_scope(database_url) as session:
            assert [event.id for event in claim_events(session, [taken], utcnow())] == [taken]
        time.sleep(WAITED_SECONDS)
        await follower.look_for_waiting_events()
        assert not await follower.reads_outbox()

        # One still waiting WAITED_SECONDS after the follower first saw it (its id says it is new):
        # the follower reads on every commit too, for a while.
        waiting = accept_event()
        await follower.look_for_waiting_events()
        assert not await follower.reads_outbox(), "just accepted: the reader may be about to take it"
        time.sleep(WAITED_SECONDS)
        await follower.look_for_waiting_events()
        assert await follower.reads_outbox(), "still waiting: the follower helps"
        assert list(follower.seen_waiting) == [waiting]
        assert 0 < follower.helping_until - time.monotonic() <= HELP_SECONDS

        # One its id says was accepted a while ago: helped with at the first look.
        with session_scope(database_url) as session:
            claim_events(session, [waiting], utcnow())
        follower.helping_until = 0.0
        old = accept_event(ago=2 * WAITED_SECONDS)
        await follower.look_for_waiting_events()
        assert await follower.reads_outbox() and list(follower.seen_waiting) == [old]

        # The reader lets go (it stopped): the follower takes the role when it next asks.
        await reader.reader.release()
        follower.helping_until, follower.reader_asked = 0.0, None
        assert await follower.reads_outbox() and follower.reader.holding
        assert not await reader.reads_outbox(), "asked again only after ROLE_CHECK_SECONDS: the role is taken"

        # A role given up and taken again (a publisher that could not reach Prefect) is not news in the log.
        for _ in range(3):
            assert await reader.publisher.held()
            await reader.publisher.release()
        assert caplog.text.count("this dispatcher emits the outbox's events into Prefect") == 1

    try:
        asyncio.run(scenario())
    finally:
        for dispatcher in (reader, follower):
            dispatcher.reader.role.release()
            dispatcher.publisher.role.release()
        get_settings.cache_clear()
        forget_engines()
