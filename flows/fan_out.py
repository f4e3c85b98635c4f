"""The webhook dispatcher: it relays committed outbox events to ``fan-out-events`` Prefect task runs.

``python -m flows.fan_out`` (the ``make up`` stack runs one) reads the outbox when the outbox bell rings
(``store/outbox_bell.py``: a PostgreSQL ``NOTIFY`` from the event's transaction, or a change of the
SQLite files; without a ring, every 10 s), claims the new events and creates their deliveries in one
transaction, then hands those with something to send to a ``fan-out-events`` task run in this process
(events nobody subscribes to are claimed with the rest and in no run: no empty runs). A run stays open
for a second (``RUN_OPEN_SECONDS``): the batches planned meanwhile join it and are sent at once, where
each would start a run of its own. Each run shows in the Prefect UI with its logs (a line per batch),
state and retries, named after its first event and how many more it carried; it sends the deliveries
concurrently through the dispatcher's shared sender (a client per receiver, one bound on requests in
flight).

Why a relay and not a run per event: a process worker starts a deployment run 3-12 s late, and a
background task (``.delay()``) costs a Prefect API write, result storage and a task-worker hop per
event; at 20 events/s on two cores that queue grew to tens of seconds (bench/RESULTS.md). A task run
made in a process that keeps its Prefect client open costs ~10 ms, and reports its states as events.

Every outbox event is also emitted into Prefect's event stream (``modelpulse.<type>``, the UI's event
feed, and what remediations' automations trigger on) by a loop of its own beside the fan-out:
``tasks/prefect_events.py``.

Nothing is lost: an event is claimed in the same transaction that creates its deliveries, each
delivery is leased to its run, and the ``retry-due-deliveries`` sweep takes over expired leases (and
events written while no dispatcher ran). Several dispatchers on one database are safe (a claim has one
winner). One of them, the holder of the ``outbox-reader`` role, reads the outbox on every ring and claims
events while it holds less than it can send promptly; the others look at most ten times a second after a
commit, and read on every ring too once an event waited 0.25 s (the reader is behind, or gone): they share
the load when one cannot carry it, and cost little when it can (bench/RESULTS.md, "Capacity").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import time
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import AsyncClientContext, TaskRunContext
from prefect.events.clients import EventsClient, get_events_client
from prefect.logging import get_logger
from prefect.runtime import task_run
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

from store.ids import id_seconds
from store.outbox_bell import OutboxBell
from store.roles import Role
from store.settings import get_settings
from tasks import prefect_events
from tasks.webhooks import fanout
from tasks.webhooks.sender import Sender, SendSummary
from tasks.webhooks.settings import get_webhook_settings

# Under Prefect's logger tree, so its console handler prints the dispatcher's own lines too.
log = get_logger("webhook-dispatcher")

# The dispatcher's shared client; a run made elsewhere (the retry sweep) opens its own.
_sender: ContextVar[Sender | None] = ContextVar("modelpulse_webhook_sender", default=None)
# The batches the dispatcher claimed and planned, handed to the run it started (so a run never starts for
# events another dispatcher won); a run started elsewhere (the retry sweep) claims and plans itself.
_open_run: ContextVar[OpenRun | None] = ContextVar("modelpulse_open_fan_out_run", default=None)

# An event whose run failed every retry before claiming it is polled again after this long.
FAILED_EVENT_PAUSE_SECONDS = 30.0
# Connections to a receiver nothing was sent to for this long are closed.
IDLE_RECEIVER_SECONDS = 60.0
# While the outbox cannot be read (the database is down), it is tried this often instead.
OUTBOX_RETRY_SECONDS = 1.0
# How long a new event waits for others to share its fan-out-events run: each run costs the dispatcher
# and the Prefect server ~15-30 ms whatever it carries (bench/RESULTS.md, "Capacity"), and the webhook
# latency goals (p50 < 250 ms, p99 < 1 s from acceptance to first attempt) leave room for this.
BATCH_WINDOW_SECONDS = 0.1
# How long a fan-out-events run takes new batches after it starts; each is sent as soon as it joins. A run
# costs the dispatcher and the Prefect server ~20-30 CPU-ms whatever it carries (its state events, its log
# lines; bench/RESULTS.md, "Capacity"): at 20 events/s, ~0.4 runs per event became one run a second.
RUN_OPEN_SECONDS = 1.0
# The Prefect event publisher reads the outbox at most this often, and waits this long after failing to
# emit (Prefect or the database down).
PUBLISH_INTERVAL_SECONDS = 0.25
PUBLISH_RETRY_SECONDS = 2.0
# Of several dispatchers, one emits events into Prefect and one reads the outbox on every ring (the
# holders of these roles, store.roles; one dispatcher may hold both). The others ask this often whether a
# role is free, and a holder checks this often that it still holds it.
PUBLISHER_ROLE = "prefect-publisher"
READER_ROLE = "outbox-reader"
ROLE_CHECK_SECONDS = 5.0
# Two dispatchers that each read the outbox on every commit race for every batch, the loser's reads and
# claim wasted: ~2 CPU-ms per event more than one dispatcher (bench/RESULTS.md). A dispatcher without the
# reader role looks when it hears a commit, then this often while it sees events waiting (at rest, not at
# all: it waits for a commit, or the next ask for the role); an event that waited WAITED_SECONDS since its
# acceptance (or since this dispatcher first saw it, whichever is sooner: clocks differ) means the reader is
# behind, or gone, and it reads on every ring too for HELP_SECONDS. The reader claims events after a
# gathering window of BATCH_WINDOW_SECONDS.
FOLLOWER_LOOK_SECONDS = 0.1
WAITED_SECONDS = 0.25
HELP_SECONDS = 10.0
# How many of the oldest waiting events a follower's look reads.
FOLLOWER_LOOK_EVENTS = 100
# A dispatcher holding this many deliveries per request it may have in flight (planned, not yet sent and
# recorded) claims no more events until some are done: the ones it would queue behind its own wait in the
# outbox, where another dispatcher sees them waiting and takes them. A reader that claimed everything at
# once kept every event from the others, and fell behind alone (bench/RESULTS.md).
HELD_DELIVERIES_PER_REQUEST = 2


def _run_name() -> str:
    event_ids = task_run.parameters["event_ids"]
    return _name(event_ids[0], len(event_ids))


def _name(first_event_id: str, events: int) -> str:
    return f"fan-out-{first_event_id}" + (f" +{events - 1}" if events > 1 else "")


@task(
    name="fan-out-events",
    task_run_name=_run_name,
    retries=2,
    retry_delay_seconds=[1, 5],
    # Nothing to cache or persist: the deliveries are recorded in ModelPulse's database. Naming a
    # storage (never written to) spares every run a Prefect API read of the server's default one,
    # so a busy Prefect server does not hold up the start of each fan-out.
    cache_policy=NO_CACHE,
    persist_result=False,
    result_storage=PREFECT_LOCAL_STORAGE_PATH.value(),
)
async def fan_out_events(event_ids: list[str]) -> dict[str, int]:
    """Send outbox events to every webhook subscribed to them (events already taken are skipped); in the
    dispatcher, also the batches that join the run while it is open."""
    run = _open_run.get()
    if run is None:  # the retry sweep's stranded events: claimed and planned here
        summary = await fanout.fan_out_events(event_ids, sender=_sender.get())
        _log_batch(event_ids, summary)
    elif (task_run.run_count or 1) > 1:
        # Sending failed (our database went away): the deliveries are leased, and once the lease ends
        # the retry sweep sends them; sending them here too could only send some twice.
        get_run_logger().warning("%d event(s): left to the retry sweep once their leases end", run.unsent)
        return asdict(SendSummary())
    else:
        summary = await run.serve(_sender.get())
        if run.events > len(event_ids):  # batches joined: the name says how many events the run carried
            context = TaskRunContext.get()
            if context is not None:  # its next state event carries the name to Prefect
                context.task_run.name = _name(event_ids[0], run.events)
    return asdict(summary)


def _log_batch(event_ids: list[str], summary: SendSummary) -> None:
    get_run_logger().info(
        "%s: %d deliveries, %d succeeded, %d to retry, %d failed",
        _batch_label(event_ids),
        summary.deliveries,
        summary.succeeded,
        summary.retrying,
        summary.failed,
    )


def _event_ids(planned: fanout.Planned) -> list[str]:
    """The events a planned batch sends, in order."""
    return list(dict.fromkeys(target.message_id for target, _ in planned))


def _batch_label(event_ids: list[str]) -> str:
    return event_ids[0] if len(event_ids) == 1 else f"{len(event_ids)} events ({', '.join(event_ids)})"


class OpenRun:
    """A ``fan-out-events`` run that takes planned batches while it is open, sending each as it joins.

    The dispatcher starts a run with a first batch (``add``) and hands it the next ones (``join``) until
    it has been open ``open_seconds``; each joiner waits for its own batch only. Once closed and every
    batch sent, the run ends; if a batch failed (our database went away while recording attempts), the
    run fails then, and its retry leaves that batch's leased deliveries to the retry sweep.
    """

    def __init__(self, open_seconds: float) -> None:
        self.closes_at = time.monotonic() + open_seconds
        self.open = True
        self.events = 0  # how many events the batches sent so far carried
        self.unsent = 0  # how many events were in batches whose sending failed
        self._batches: asyncio.Queue[tuple[list[str], fanout.Planned, asyncio.Future[None]]] = asyncio.Queue()

    def add(self, planned: fanout.Planned) -> asyncio.Future[None]:
        """Hand ``planned`` to the run: the future is done once it is sent (or the run ended without it)."""
        done = asyncio.get_running_loop().create_future()
        self._batches.put_nowait((_event_ids(planned), planned, done))
        return done

    def join(self, planned: fanout.Planned) -> asyncio.Future[None] | None:
        """``add`` while the run is open; ``None`` once it takes no more."""
        if not self.open or time.monotonic() >= self.closes_at:
            return None
        return self.add(planned)

    async def serve(self, sender: Sender | None) -> SendSummary:
        """Send every batch that joins until the run closes, each at once; the run's summary."""
        summary = SendSummary()
        failed: list[Exception] = []
        sending: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    batch = await asyncio.wait_for(self._batches.get(), max(0.0, self.closes_at - time.monotonic()))
                except TimeoutError:
                    break
                sending.add(asyncio.create_task(self._send(*batch, sender, summary, failed)))
        finally:
            self.open = False
            while not self._batches.empty():  # joined as the run closed
                sending.add(asyncio.create_task(self._send(*self._batches.get_nowait(), sender, summary, failed)))
            await asyncio.gather(*sending)
        if failed:
            raise failed[0]
        return summary

    async def _send(
        self,
        event_ids: list[str],
        planned: fanout.Planned,
        done: asyncio.Future[None],
        sender: Sender | None,
        summary: SendSummary,
        failed: list[Exception],
    ) -> None:
        try:
            sent = await fanout.send_planned(planned, sender=sender)
            summary.include(sent)
            self.events += len(event_ids)
            _log_batch(event_ids, sent)
        except Exception as error:  # noqa: BLE001 - fails the run once every batch is sent
            get_run_logger().error("%s: %s: %s", _batch_label(event_ids), type(error).__name__, error)
            self.unsent += len(event_ids)
            failed.append(error)
        finally:
            if not done.done():
                done.set_result(None)

    def abandon(self, why: BaseException | None) -> None:
        """The run ended: batches it never took fail, so their joiners pause those events."""
        self.open = False
        while not self._batches.empty():
            _, _, done = self._batches.get_nowait()
            if not done.done():
                done.set_exception(RuntimeError(f"the fan-out-events run ended before sending them ({why!r})"))


class Duty:
    """A role (``store.roles``) a dispatcher asks for now and then; it says when the answer changes."""

    def __init__(self, name: str, holding: str, not_holding: str) -> None:
        self.role = Role(name)
        self._says = {True: holding, False: not_holding}
        self.holding = False  # when it last asked, or since it gave the role up
        self._said: bool | None = None  # what it last said (a role given up and taken again is not news)

    async def held(self) -> bool:
        """Whether this dispatcher holds the role (taking it when free)."""
        self.holding = await asyncio.to_thread(self.role.held)
        if self.holding != self._said:
            log.info(self._says[self.holding], self.role.name)
            self._said = self.holding
        return self.holding

    async def release(self) -> None:
        """Give the role up: another dispatcher may take it at once."""
        self.holding = False
        await asyncio.to_thread(self.role.release)


class Dispatcher:
    """Polls the outbox and starts a ``fan-out-events`` run for every batch of new events."""

    def __init__(
        self,
        poll_seconds: float,
        max_events: int,
        batch_size: int,
        batch_window: float = 0.0,
        run_open_seconds: float = 0.0,
    ) -> None:
        self.poll_seconds = poll_seconds
        self.max_events = max_events
        self.batch_size = batch_size
        # New events wait until the oldest of them is this old (or a batch is full) before a run starts:
        # a Prefect task run costs the same for one event as for fifty.
        self.batch_window = batch_window
        # A run takes new batches this long after it starts (0: a run per batch).
        self.run_open_seconds = run_open_seconds
        self.open_run: OpenRun | None = None
        self.collect_until: float | None = None  # the wall-clock time the events found are due by
        self.gathering: tuple[str, float] | None = None  # the oldest event gathering others, and its due time
        self.in_flight: set[str] = set()
        self.max_held_deliveries = HELD_DELIVERIES_PER_REQUEST * get_webhook_settings().concurrency
        self.held_deliveries = 0  # planned by this dispatcher, not yet sent and recorded
        self.paused: dict[str, float] = {}  # event id -> when it may be tried again
        self.runs: set[asyncio.Task[None]] = set()
        self.outbox_down_since: float | None = None  # when reading the outbox last started failing
        self.bell: OutboxBell | None = None
        # The last read of the outbox and the bell's generation before it, while it still holds: nothing
        # was committed since (the bell hears every commit and has not rung), and it found fewer than it
        # asked for. The look when a gathering window ends, and the one after starting a batch, use it
        # instead of reading again; a wait for the bell forgets it (bench/RESULTS.md).
        self.last_read: tuple[int, list[str]] | None = None
        self.publisher = Duty(
            PUBLISHER_ROLE,
            "this dispatcher emits the outbox's events into Prefect (it holds the %s role)",
            "another dispatcher emits the outbox's events into Prefect (it holds the %s role); "
            "this one takes over when it stops",
        )
        self.emit_failing_since: float | None = None  # when emitting into Prefect last started failing
        self.reader = Duty(
            READER_ROLE,
            "this dispatcher reads the outbox as events are committed (it holds the %s role)",
            "another dispatcher reads the outbox as events are committed (it holds the %s role); this one "
            "takes the events it leaves waiting, and its role when it stops",
        )
        self.reader_asked: float | None = None  # when this dispatcher last asked for the reader role
        self.helping_until = 0.0  # a follower reads on every ring until then
        self.seen_waiting: dict[str, float] = {}  # the events a follower's last look found waiting: first seen
        self.looked_at: int | None = None  # the bell's generation before that look

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set, then let the runs in flight finish."""
        async with AsyncExitStack() as resources:
            # One Prefect client for every task run of the process: without it each run opens its own.
            if not await _open_prefect_client(resources, stop):
                return
            sender = await resources.enter_async_context(Sender(get_webhook_settings()))
            _sender.set(sender)
            bell = self.bell = await resources.enter_async_context(
                OutboxBell(get_settings().resolved_database_url, check_seconds=self.poll_seconds)
            )
            # Everything made so far (Prefect, SQLAlchemy, pydantic: ~200k objects) lives as long as
            # the process: out of the collector's sight, a full collection scans only what the
            # fan-outs keep, and pauses every send for tens of ms instead of hundreds.
            gc.collect()
            gc.freeze()
            # Prefect events go out beside the fan-out, never in its way (tasks/prefect_events.py).
            publisher = asyncio.create_task(self.publish_to_prefect(stop, bell))
            resources.push_async_callback(self.reader.release)  # at exit: a follower reads at once
            log.info("dispatching outbox events as they are committed (store/outbox_bell.py)")
            last_tidy = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - last_tidy >= IDLE_RECEIVER_SECONDS:
                    await sender.close_idle(IDLE_RECEIVER_SECONDS)
                    last_tidy = time.monotonic()
                if not await self.reads_outbox():
                    if self.outbox_down_since is not None:
                        await _wait(stop, OUTBOX_RETRY_SECONDS)
                    elif self.seen_waiting:
                        await _wait(stop, FOLLOWER_LOOK_SECONDS)
                    elif self.looked_at is None:  # the bell cannot hear commits: a look a second
                        await _wait(stop, bell.fallback_seconds)
                    else:  # the last look found nothing: until a commit (or the next ask for the role)
                        await _until_rung(stop, bell, self.looked_at, ROLE_CHECK_SECONDS)
                    await self.look_for_waiting_events(bell)
                    continue
                seen = bell.generation
                if not await self.dispatch_new_events():
                    if self.collect_until is not None:  # new events gather: no read before they are due
                        await _wait(stop, max(0.0, self.collect_until - time.time()))
                    else:
                        self.last_read = None  # woken by a ring or a timeout: read again
                        down = self.outbox_down_since is not None
                        await _until_rung(
                            stop, bell, seen, OUTBOX_RETRY_SECONDS if down else self._until_a_pause_ends()
                        )
            if self.runs:
                log.info("waiting for %d fan-out run(s) to finish", len(self.runs))
                await self.finish()
            await asyncio.gather(publisher, return_exceptions=True)

    async def publish_to_prefect(self, stop: asyncio.Event, bell: OutboxBell) -> None:
        """Emit every outbox event into Prefect's event stream until ``stop`` is set.

        One events websocket for the process, each event confirmed (checkpointed) before its batch is
        marked published; when Prefect or the database fails, the batch stays unpublished and is
        emitted again (under the same Prefect event ids) once both answer.

        Of several dispatchers on one database, one emits: the holder of the ``prefect-publisher`` role
        (``store.roles``). Each emitted every event before, and Prefect's server parsed, streamed and
        dropped every repeat. The others ask for the role every ``ROLE_CHECK_SECONDS`` and one takes
        it over when its holder dies or gives it up, which it does while it cannot emit.
        """
        try:
            while not stop.is_set():
                if not await self.publisher.held():
                    await _wait(stop, ROLE_CHECK_SECONDS)
                    continue
                try:
                    async with get_events_client(checkpoint_every=1) as client:
                        await self._emit_while_held(client, stop, bell)
                except Exception as error:  # noqa: BLE001 - Prefect or the database is down: try again shortly
                    if self.emit_failing_since is None:  # once per outage
                        self.emit_failing_since = time.monotonic()
                        log.warning(
                            "could not emit events to Prefect (%s: %s); trying again every %g s",
                            type(error).__name__, error, PUBLISH_RETRY_SECONDS,
                        )
                    # Given up while this dispatcher cannot emit: another may reach Prefect meanwhile.
                    await self.publisher.release()
                    await _wait(stop, PUBLISH_RETRY_SECONDS)
        finally:
            await self.publisher.release()

    async def _emit_while_held(self, client: EventsClient, stop: asyncio.Event, bell: OutboxBell) -> None:
        """Emit new events through ``client`` until ``stop`` is set or this dispatcher no longer holds the
        publisher role."""
        checked = time.monotonic()
        while not stop.is_set():
            seen = bell.generation
            emitted = await prefect_events.publish_events(client)
            if self.emit_failing_since is not None:
                log.info("emitting events to Prefect again after %.0f s", time.monotonic() - self.emit_failing_since)
                self.emit_failing_since = None
            # At most a few reads a second however busy the outbox is: Prefect events feed automations,
            # which need no millisecond latency, and every commit rings.
            await _wait(stop, PUBLISH_INTERVAL_SECONDS)
            if not emitted:
                await _until_rung(stop, bell, seen)
            if time.monotonic() - checked >= ROLE_CHECK_SECONDS:
                if not await self.publisher.held():
                    return
                checked = time.monotonic()

    async def reads_outbox(self) -> bool:
        """Whether this dispatcher reads the outbox on every ring: it holds the reader role (asked every
        ``ROLE_CHECK_SECONDS``), or it helps the holder."""
        now = time.monotonic()
        if self.reader_asked is None or now - self.reader_asked >= ROLE_CHECK_SECONDS:
            self.reader_asked = now
            await self.reader.held()
        return self.reader.holding or now < self.helping_until

    async def look_for_waiting_events(self, bell: OutboxBell | None = None) -> None:
        """A follower's look at the outbox. An event waiting ``WAITED_SECONDS`` (none of its own, paused
        after failing) means the reader is behind, or gone: this dispatcher then reads on every ring too,
        for ``HELP_SECONDS``; with nothing claimed twice (a claim has one winner). No query when ``bell``
        heard no commit since a look that found nothing: a stack at rest is not read ten times a second."""
        generation = bell.generation if bell is not None and bell.hearing else None
        if generation is not None and generation == self.looked_at and not self.seen_waiting:
            return
        self.looked_at = generation
        try:
            found = await asyncio.to_thread(fanout.undispatched_event_ids, FOLLOWER_LOOK_EVENTS)
        except Exception as error:  # noqa: BLE001 - the database is down: the reader cannot read it either
            self._outbox_unreadable(error)
            self.seen_waiting = {}
            return
        self._outbox_readable()
        now = time.time()
        self.seen_waiting = {
            event_id: self.seen_waiting.get(event_id, now) for event_id in found if event_id not in self.paused
        }
        waited = (min(id_seconds(event_id), seen) for event_id, seen in self.seen_waiting.items())
        if not any(since <= now - WAITED_SECONDS for since in waited):
            return
        if time.monotonic() >= self.helping_until:
            log.info(
                "events waited over %g s in the outbox: this dispatcher reads it on every commit too for %g s",
                WAITED_SECONDS, HELP_SECONDS,
            )  # fmt: skip
        self.helping_until = time.monotonic() + HELP_SECONDS

    async def finish(self) -> None:
        """Until every fan-out started so far has ended, its run included."""
        while self.runs:  # a batch being sent may have started a run meanwhile
            await asyncio.gather(*self.runs, return_exceptions=True)

    async def dispatch_new_events(self) -> bool:
        """Start runs for the events found now; whether there were any."""
        now = time.monotonic()
        self.paused = {event_id: until for event_id, until in self.paused.items() if until > now}
        room = self.max_events - len(self.in_flight)
        if room <= 0 or self._holds_enough():  # read again when a run ends (it rings the bell)
            self.collect_until = None
            return False
        try:
            found = await self._read_outbox(room + len(self.in_flight) + len(self.paused))
        except Exception as error:  # noqa: BLE001 - a database hiccup: poll again later
            self._outbox_unreadable(error)
            return False
        self._outbox_readable()
        new = [event_id for event_id in found if event_id not in self.in_flight and event_id not in self.paused]
        new = new[:room]
        self.collect_until = None
        if not new:
            return False
        due = self._due(new[0])
        if len(new) < self.batch_size and due > time.time():
            self.collect_until = due
            return False
        for start in range(0, len(new), self.batch_size):
            self._start(new[start : start + self.batch_size])
        return True

    def _outbox_unreadable(self, error: Exception) -> None:
        if self.outbox_down_since is None:  # once per outage, not once per poll
            self.outbox_down_since = time.monotonic()
            log.warning(
                "could not read the outbox (%s: %s); trying again every %g s",
                type(error).__name__, error, OUTBOX_RETRY_SECONDS,
            )  # fmt: skip

    def _outbox_readable(self) -> None:
        if self.outbox_down_since is not None:
            log.info("the outbox is readable again after %.0f s", time.monotonic() - self.outbox_down_since)
            self.outbox_down_since = None

    async def _read_outbox(self, limit: int) -> list[str]:
        """The undispatched events (up to ``limit``): the last read's, if nothing was committed since."""
        bell = self.bell
        generation = bell.generation if bell is not None and bell.hearing else None
        if generation is not None and self.last_read is not None and self.last_read[0] == generation:
            return self.last_read[1]
        found = await asyncio.to_thread(fanout.undispatched_event_ids, limit)
        complete = len(found) < limit  # a read cut short may have left some out
        self.last_read = (generation, found) if generation is not None and complete else None
        return found

    def _due(self, oldest: str) -> float:
        """When the events gathering behind ``oldest`` (ids are time-ordered) are to start their run: the
        window after its acceptance, by the clock of the machine that accepted it, or after this dispatcher
        first saw it, whichever is sooner (a clock running ahead must not hold events back)."""
        if self.gathering is None or self.gathering[0] != oldest:
            self.gathering = (oldest, min(id_seconds(oldest), time.time()) + self.batch_window)
        return self.gathering[1]

    def _until_a_pause_ends(self) -> float | None:
        """Seconds until the first paused event may be tried again; ``None`` when none is paused."""
        if not self.paused:
            return None
        return max(0.0, min(self.paused.values()) - time.monotonic())

    def _start(self, event_ids: list[str]) -> None:
        self.in_flight.update(event_ids)
        run = asyncio.create_task(self._fan_out(event_ids))
        self.runs.add(run)
        run.add_done_callback(self.runs.discard)

    def _holds_enough(self) -> bool:
        """Whether this dispatcher has as much to send as it should queue (the rest waits for others)."""
        return len(self.in_flight) >= self.max_events or self.held_deliveries >= self.max_held_deliveries

    async def _fan_out(self, event_ids: list[str]) -> None:
        planned: fanout.Planned = []
        try:
            # Claimed before the run starts: the events another dispatcher won, and those nobody
            # subscribes to (or whose subscribers' filters all turn them down: claimed, nothing to send),
            # are in no run; when nothing is left, there is no run at all.
            planned = await fanout.plan_fan_out(event_ids)
            self.held_deliveries += len(planned)
            if planned:
                await self._send(planned)
        except Exception as error:  # noqa: BLE001 - planning failed (our database), or the run's retries are spent: pause, not drop
            log.error("fan-out of %s failed (%s: %s)", event_ids, type(error).__name__, error)
            until = time.monotonic() + FAILED_EVENT_PAUSE_SECONDS
            self.paused.update(dict.fromkeys(event_ids, until))
        finally:
            full = self._holds_enough()
            self.held_deliveries -= len(planned)
            self.in_flight.difference_update(event_ids)
            if full and self.bell is not None:  # room again: what waited for it is read now, not in 10 s
                await self.bell.ring()

    async def _send(self, planned: fanout.Planned) -> None:
        """Hand ``planned`` to the open run, or start one with it; until it is sent."""
        done = self.open_run.join(planned) if self.open_run is not None else None
        if done is None:
            run = self.open_run = OpenRun(self.run_open_seconds)
            done = run.add(planned)
            task = asyncio.create_task(self._run(run, _event_ids(planned)))
            self.runs.add(task)
            task.add_done_callback(self.runs.discard)
        await done

    @staticmethod
    async def _run(run: OpenRun, first: list[str]) -> None:
        _open_run.set(run)  # this asyncio task's own context: read by the run below
        error: BaseException | None = None
        try:
            await fan_out_events(first)
        except BaseException as failure:  # its batches' joiners say what failed
            error = failure
            if not isinstance(failure, Exception):
                raise
            log.error("the fan-out run of %s failed (%s: %s)", first[0], type(failure).__name__, failure)
        finally:
            run.abandon(error)


async def _open_prefect_client(resources: AsyncExitStack, stop: asyncio.Event) -> bool:
    """Enter the process's Prefect client context, waiting for the server while it is not up."""
    while not stop.is_set():
        try:
            await resources.enter_async_context(AsyncClientContext())
            return True
        except Exception as error:  # noqa: BLE001 - unreachable or starting: try again shortly
            log.warning("the Prefect API is not reachable (%s); trying again in 2 s", type(error).__name__)
            await _wait(stop, 2.0)
    return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _until_rung(stop: asyncio.Event, bell: OutboxBell, seen: int, seconds: float | None = None) -> None:
    """Until the outbox bell rang since ``seen`` (or its fallback, or ``seconds``, passed), or ``stop``."""
    ringing = asyncio.ensure_future(bell.wait(seen, seconds))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((ringing, stopping), return_when=asyncio.FIRST_COMPLETED)
    for waiter in (ringing, stopping):
        waiter.cancel()


async def _serve(dispatcher: Dispatcher) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await dispatcher.run(stop)


def main(argv: list[str] | None = None) -> None:
    """Run the dispatcher until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="Relay committed outbox events to webhook fan-out runs.")
    parser.add_argument(
        "--poll-seconds", type=float, default=0.05,
        help="on SQLite, how often the database files are checked for a commit (PostgreSQL notifies)",
    )
    parser.add_argument(
        "--max-events", type=int, default=1000, help="events being fanned out at once (the rest wait)"
    )
    parser.add_argument("--batch-size", type=int, default=50, help="events per fan-out-events run at most")
    parser.add_argument(
        "--batch-window-seconds", type=float, default=BATCH_WINDOW_SECONDS,
        help="how long new events wait for others to share their fan-out-events run (unless a batch is full)",
    )
    parser.add_argument(
        "--run-open-seconds", type=float, default=RUN_OPEN_SECONDS,
        help="how long a fan-out-events run takes new batches after it starts (0: a run per batch)",
    )
    args = parser.parse_args(argv)
    dispatcher = Dispatcher(
        args.poll_seconds, args.max_events, args.batch_size, args.batch_window_seconds, args.run_open_seconds
    )
    asyncio.run(_serve(dispatcher))


if __name__ == "__main__":
    main()
