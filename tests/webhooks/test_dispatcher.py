"""The webhook dispatcher: its runs show in Prefect (and only for events some webhook wants), a second
dispatcher sends nothing twice (nor starts a run for what the first claimed), and a secret or header
changed through the API is used by the very next delivery (the dispatcher caches secrets per version of
the webhook); its shared sender keeps at most ``max_idle_clients`` per-origin connection pools open,
closing the least recently used."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from contextlib import ExitStack
from datetime import timedelta

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    LogFilter,
    LogFilterTaskRunId,
    LogFilterTextSearch,
    TaskRunFilter,
    TaskRunFilterId,
)
from sqlalchemy import Engine, event

from flows.fan_out import Dispatcher
from store.db import forget_engines, session_scope
from store.event_catalog import BY_TYPE
from store.events import record_event
from store.ids import new_id
from store.models import Event, Organization, utcnow
from store.outbox_bell import OutboxBell
from store.settings import get_settings
from tasks.webhooks import fanout
from tasks.webhooks.sender import OriginPool, Sender
from tasks.webhooks.settings import get_webhook_settings
from tests.support.polling import wait_until
from tests.webhooks.conftest import FanOutWorker
from tests.webhooks.receivers import Receiver

EVENT_ID = re.compile(r"evt_[0-9a-z]+")


def _fan_out_runs(event_id: str) -> list:
    """The fan-out-events runs that sent the event: their logs name it (a line for each batch a run sent)."""
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(log_filter=LogFilter(text=LogFilterTextSearch(query=event_id)))
        run_ids = list({log.task_run_id for log in logs if log.task_run_id is not None})
        if not run_ids:
            return []
        return prefect.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=run_ids)))


def _events_sent_by(run) -> set[str]:
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[run.id])))
    return {event_id for log in logs for event_id in EVENT_ID.findall(log.message)}


def _named_for(run, events: set[str]) -> bool:
    """Whether the run is named after one of its events and how many more it carried."""
    first, _, more = run.name.removeprefix("fan-out-").partition(" +")
    return first in events and int(more or 0) == len(events) - 1


def test_each_fan_out_is_a_prefect_task_run(fan_out_worker, create_webhook, publish):
    with Receiver() as receiver:
        create_webhook(receiver.url)
        event_id = publish()
        wait_until(lambda: receiver.received, what="the delivery")
    (run,) = wait_until(
        lambda: [r for r in _fan_out_runs(event_id) if r.state and r.state.is_completed()],
        what="the completed fan-out-events run in Prefect",
    )
    assert run.task_key.startswith("fan_out_events-")
    assert _named_for(run, _events_sent_by(run)), run.name


def test_batches_planned_while_a_run_is_open_join_it_and_are_sent_at_once(create_webhook, publish):
    """The run started for the first event takes the next batch, sent as soon as it joins (not when the
    run closes), and is renamed for every event it carried."""
    with Receiver() as receiver:
        create_webhook(receiver.url)

        async def two_batches() -> float:
            dispatcher = Dispatcher(0.05, 1000, 50, run_open_seconds=3.0)
            first = publish()
            assert await dispatcher.dispatch_new_events()
            await asyncio.to_thread(wait_until, lambda: len(receiver.received) == 1, what="the first delivery")
            more = [publish(), publish()]
            joined = time.monotonic()
            assert await dispatcher.dispatch_new_events()
            await asyncio.to_thread(wait_until, lambda: len(receiver.received) == 3, what="the joined deliveries")
            sent_after = time.monotonic() - joined
            await dispatcher.finish()
            return first, more, sent_after

        first, more, sent_after = asyncio.run(two_batches())
    assert sent_after < 1.5, "a joined batch is sent when it joins, not when the run closes (3 s)"
    (run,) = wait_until(
        lambda: [r for r in _fan_out_runs(first) if r.state and r.state.is_completed() and " +" in r.name],
        what="the run, renamed for the events that joined it",
    )
    assert run.name == f"fan-out-{first} +2"
    assert _events_sent_by(run) == {first, *more}
    assert {r.id for e in more for r in _fan_out_runs(e)} == {run.id}, "the joined events are in no other run"


def test_two_dispatchers_send_each_event_once(fan_out_worker, webhook_database_url, create_webhook, publish):
    second = FanOutWorker(webhook_database_url)
    second.start()
    try:
        with Receiver() as receiver:
            create_webhook(receiver.url)
            sent = [publish() for _ in range(20)]
            wait_until(lambda: len(receiver.received) >= len(sent), what="every event")
            # Give a duplicate time to arrive, were one on its way.
            wait_until(lambda: all(r.answered for r in receiver.received), what="the answers")
            delivered = [r.headers["webhook-id"] for r in receiver.received]
    finally:
        second.stop()
    assert sorted(delivered) == sorted(sent)

    # Each event is in exactly one fan-out-events run: a dispatcher claims events before it sends them,
    # so the one that lost them sends (and logs) none.
    def runs_of_each() -> dict[str, set]:
        return {event_id: {run.id for run in _fan_out_runs(event_id)} for event_id in sent}

    wait_until(lambda: all(runs_of_each().values()), what="the fan-out-events runs of every event in Prefect")
    assert all(len(runs) == 1 for runs in runs_of_each().values()), "an event in two runs"


def test_rotated_secret_and_changed_headers_are_used_by_the_next_delivery(
    fan_out_worker, client, organization, create_webhook, publish
):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url, headers={"X-Receiver-Token": "first"})
        path = f"/organizations/{organization.id}/webhooks/{webhook['id']}"

        def delivered(event_id: str):
            return wait_until(
                lambda: next((r for r in receiver.received if r.headers["webhook-id"] == event_id), None),
                what=f"the delivery of {event_id}",
            )

        first = delivered(publish())  # the dispatcher now holds this webhook's secrets
        first.verify(webhook["signing_secret"])
        assert first.headers["x-receiver-token"] == "first"

        rotated = client.post(f"{path}/rotate-secret", headers=organization.headers)
        assert rotated.status_code == 200, rotated.get_json()
        new_secret = rotated.get_json()["signing_secret"]
        second = delivered(publish())
        assert len(second.headers["webhook-signature"].split(" ")) == 2
        second.verify(new_secret)
        second.verify(webhook["signing_secret"])

        body = {"name": webhook["name"], "url": webhook["url"], "events": webhook["events"]}
        updated = client.put(
            path, json=body | {"headers": {"X-Receiver-Token": "second"}}, headers=organization.headers
        )
        assert updated.status_code == 200, updated.get_json()
        third = delivered(publish())
        assert third.headers["x-receiver-token"] == "second"
        third.verify(new_secret)


def test_an_event_nobody_subscribes_to_is_settled_without_a_run(fan_out_worker, create_webhook, publish):
    with Receiver() as receiver:
        create_webhook(receiver.url, events=["model.registered"])
        unwanted = publish("drift.detected")  # the organization's only webhook takes another type
        wanted = publish("model.registered")
        wait_until(lambda: receiver.received, what="the subscribed event's delivery")
    wait_until(lambda: _dispatched_at(unwanted), what="the unsubscribed event marked dispatched")
    wait_until(
        lambda: [r for r in _fan_out_runs(wanted) if r.state and r.state.is_completed()],
        what="the subscribed event's run in Prefect",
    )
    assert _fan_out_runs(unwanted) == []
    assert [r.headers["webhook-id"] for r in receiver.received] == [wanted]


def _dispatched_at(event_id: str):
    with session_scope() as session:
        return session.get(Event, event_id).dispatched_at


def test_a_dispatcher_that_lost_the_claim_starts_no_run(fan_out_worker, create_webhook, publish, monkeypatch):
    """Two dispatchers read the same new events before either claims them (as two woken by one commit
    do): only the one whose claim wins starts a fan-out-events run. (The session's dispatcher process is
    stopped meanwhile: it would claim them first.)"""
    # Neither read returns before both are done: otherwise, on a busy machine, the first dispatcher's
    # claim could land before the second's read, which would then find nothing.
    both_read = threading.Barrier(2, timeout=30)
    read = fanout.undispatched_event_ids

    def read_together(*args, **kwargs):
        found = read(*args, **kwargs)
        both_read.wait()
        return found

    monkeypatch.setattr(fanout, "undispatched_event_ids", read_together)
    fan_out_worker.stop()
    try:
        _race_two_dispatchers(create_webhook, publish)
    finally:
        fan_out_worker.start()


def _race_two_dispatchers(create_webhook, publish) -> None:
    with Receiver() as receiver:
        create_webhook(receiver.url)
        sent = [publish() for _ in range(3)]

        async def race() -> None:
            first, second = Dispatcher(0.05, 1000, 50), Dispatcher(0.05, 1000, 50)
            found = await asyncio.gather(first.dispatch_new_events(), second.dispatch_new_events())
            assert found == [True, True], "both found the events: neither had claimed them yet"
            await asyncio.gather(first.finish(), second.finish())

        asyncio.run(race())
        wait_until(lambda: len(receiver.received) >= len(sent), what="the deliveries")
    runs = wait_until(
        lambda: [r for r in _fan_out_runs(sent[0]) if r.state and r.state.is_final()], what="the run in Prefect"
    )
    assert [run.name for run in runs] == [f"fan-out-{sent[0]} +2"]
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(sent)


def test_sender_closes_least_recently_used_pools_beyond_its_cap():
    """A fan-out to many receivers leaves at most ``max_pools`` connection pools open (issue 22); the ones
    kept are those used last, so a receiver with steady traffic keeps its pool and connection, and
    a pool a request is using is never closed under it."""
    with ExitStack() as stack:
        receivers = [stack.enter_context(Receiver()) for _ in range(5)]
        urls = [receiver.url for receiver in receivers]
        origins = [url.removesuffix("/hook") for url in urls]

        async def scenario() -> None:
            async with Sender(get_webhook_settings(), max_pools=2) as sender:

                async def post(url: str, pool: OriginPool | None = None) -> OriginPool:
                    if pool is not None:
                        assert await _post(pool.transport, url) == 200
                        return pool
                    async with sender.pool_for(url) as held:
                        assert await _post(held.transport, url) == 200
                        return held

                first = [await post(url) for url in urls[:4]]
                assert sender.open_origins == origins[2:4]
                assert [pool.closed for pool in first] == [True, True, False, False]

                # Steady traffic: a recently used origin keeps its pool (and its open connection)...
                assert await post(urls[2]) is first[2]
                assert sender.open_origins == [origins[3], origins[2]]
                # ...and the least recently used one is closed for a new origin.
                fifth = await post(urls[4])
                assert first[3].closed and not first[2].closed
                assert sender.open_origins == [origins[2], origins[4]]

                # A pool in use stays open beyond the cap until its request is done.
                async with sender.pool_for(urls[0]) as held:
                    await post(urls[1])
                    assert sender.open_origins == [origins[0], origins[1]]
                    assert first[2].closed and fifth.closed
                    await post(urls[0], held)
                assert not held.closed and sender.open_origins == [origins[1], origins[0]]

                # Many origins at once, as a large fan-out sends them: the cap holds once they finish.
                await asyncio.gather(*(post(url) for url in urls))
                assert len(sender.open_origins) == 2

        asyncio.run(scenario())
    assert [len(receiver.received) for receiver in receivers] == [3, 3, 3, 2, 2]


async def _post(transport: httpx.AsyncBaseTransport, url: str) -> int:
    """POST ``{}`` through a pool; the answer's status."""
    response = await transport.handle_async_request(httpx.Request("POST", url, content=b"{}"))
    await response.aread()
    await response.aclose()
    return response.status_code


def test_new_events_gather_for_the_window_at_most_whatever_the_accepting_clock_says():
    dispatcher = Dispatcher(0.05, 1000, 50, batch_window=0.1)
    past = new_id("evt", utcnow() - timedelta(seconds=1))
    assert dispatcher._due(past) < time.time(), "accepted a second ago: due already"
    # Accepted on a machine whose clock runs 30 s ahead: due a window after this dispatcher first saw it,
    # and it stays due then (not a window after each look).
    ahead = new_id("evt", utcnow() + timedelta(seconds=30))
    due = dispatcher._due(ahead)
    assert 0 < due - time.time() <= 0.1
    time.sleep(0.05)
    assert dispatcher._due(ahead) == due


def test_a_dispatcher_that_was_full_rings_when_a_run_ends_and_one_with_room_does_not(webhook_database_url):
    """Events beyond ``--max-events`` wait for room; a run that ends makes some, and rings the bell so
    that they are read now, not at the bell's quiet-period read (10 s)."""

    async def generation_after_a_run(max_events: int) -> int:
        dispatcher = Dispatcher(0.05, max_events, 50)
        async with OutboxBell(webhook_database_url, quiet_seconds=30) as bell:
            dispatcher.bell = bell
            event_id = new_id("evt")  # in no outbox: the run claims nothing and ends
            dispatcher.in_flight.add(event_id)
            before = bell.generation
            await dispatcher._fan_out([event_id])
            assert dispatcher.in_flight == set()
            return bell.generation - before

    assert asyncio.run(generation_after_a_run(max_events=1)) == 1
    assert asyncio.run(generation_after_a_run(max_events=2)) == 0


def test_the_outbox_is_read_again_only_after_a_commit(sqlite_url, monkeypatch):
    """When a gathering window ends, and after a batch starts, the dispatcher uses its last read of the
    outbox while the bell has heard no commit since; once it has, the next look is a read. (A database of
    its own: the session's dispatcher process would claim the events first.)"""
    reads: list[str] = []

    def count(_connection, _cursor, statement, *_args) -> None:
        if "FROM events WHERE events.dispatched_at IS NULL" in " ".join(statement.split()):
            reads.append(statement)

    with session_scope(sqlite_url) as session:
        session.merge(Organization(id="acme"))

    def record() -> None:  # an event nobody subscribes to: claimed, no run
        with session_scope(sqlite_url) as session:
            record_event(session, "acme", "recommendation.created", BY_TYPE["recommendation.created"].example)

    async def scenario() -> None:
        dispatcher = Dispatcher(0.05, 1000, 50, batch_window=0.3)
        async with OutboxBell(sqlite_url, check_seconds=0.02, quiet_seconds=30) as bell:
            dispatcher.bell = bell

            async def committed() -> None:
                seen = bell.generation
                record()
                await bell.wait(seen, 5)
                assert bell.generation != seen, "the bell heard the commit"

            await asyncio.sleep(0.1)  # the bell's first look at the files
            await committed()
            assert not await dispatcher.dispatch_new_events(), "gathering for the window"
            await asyncio.sleep(0.35)  # the 0.3 s gathering window passes
            assert await dispatcher.dispatch_new_events(), "due: started"
            assert not await dispatcher.dispatch_new_events(), "in flight: nothing new"
            assert len(reads) == 1, "no commit since the first read"

            await dispatcher.finish()  # the claim is a commit: SQLite's files change
            await committed()
            assert not await dispatcher.dispatch_new_events()
            assert len(reads) == 2, "a commit since: read again"

    shared = os.environ["MODELPULSE_DATABASE_URL"]
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", sqlite_url)
    forget_engines()
    get_settings.cache_clear()
    event.listen(Engine, "before_cursor_execute", count)
    try:
        asyncio.run(scenario())
    finally:
        event.remove(Engine, "before_cursor_execute", count)
        monkeypatch.setenv("MODELPULSE_DATABASE_URL", shared)  # the next tests' engines: the shared database
        forget_engines()
        get_settings.cache_clear()
