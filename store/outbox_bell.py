"""The outbox bell: how a dispatcher learns that events were committed without querying the outbox
over and over.

A dispatcher used to read the outbox every 50 ms whether or not anything had been written: ~20
queries a second, 0.03-0.04 cores of an idle machine. The bell rings when the database may hold
something new, and the dispatcher reads the outbox then; without a ring, every ``quiet_seconds`` (10)
while the bell hears commits, and every ``fallback_seconds`` (1) while it cannot (the ``LISTEN``
connection is down, or the database is neither of these):

- **PostgreSQL**: ``record_event`` sends ``NOTIFY modelpulse_outbox`` in the event's own transaction,
  delivered to every listener when (and only if) it commits; the bell holds a ``LISTEN`` connection
  of its own. A dispatcher on any machine hears a commit on any other within a round trip, and rings
  after a random delay of up to ``check_seconds`` (once for all the commits heard meanwhile), so that
  several dispatchers do not all read (and start a run for) the same events at once.
- **SQLite** (one machine): every commit writes the database's files; the bell compares their size
  and modification time every ``check_seconds`` (a ``stat`` each: microseconds, no query).

``generation`` counts rings. A waiter notes it *before* reading the outbox and then waits for it to
change, so a commit that lands between the read and the wait still wakes it. ``ring()`` wakes this
process's waiters for work it made itself (a dispatcher that was full has room again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "modelpulse_outbox"
# How long the listener waits on its socket before looking again (anything arriving wakes it at once).
LISTEN_WAKE_SECONDS = 60.0
_NOTIFIED = "modelpulse_outbox_notified"


def ring_on_commit(session: Session) -> None:
    """On PostgreSQL, have the session's transaction wake every listening bell when it commits (once
    per transaction; elsewhere nothing)."""
    if session.info.get(_NOTIFIED) is session.get_transaction() or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text(f"NOTIFY {CHANNEL}"))
    session.info[_NOTIFIED] = session.get_transaction()


class OutboxBell:
    """Rings when the database behind ``database_url`` may hold new outbox events."""

    def __init__(
        self, database_url: str, check_seconds: float = 0.05, fallback_seconds: float = 1.0, quiet_seconds: float = 10.0
    ) -> None:
        self.database_url = database_url
        self.check_seconds = check_seconds
        self.fallback_seconds = fallback_seconds
        self.quiet_seconds = quiet_seconds
        self.hearing = False  # whether a commit now would ring the bell
        self.generation = 0
        self._changed = asyncio.Condition()
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutboxBell:
        url = make_url(self.database_url)
        if url.get_backend_name() == "postgresql":
            self._watcher = asyncio.create_task(self._listen(url))
        elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._watcher = asyncio.create_task(self._watch_files(Path(url.database)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def wait(self, seen: int, seconds: float | None = None) -> None:
        """Until the bell has rung since generation ``seen``, or ``seconds`` passed (at most, and by
        default, ``quiet_seconds`` while the bell hears commits, ``fallback_seconds`` while it cannot).
        Without a watcher (another database) it only waits out the time."""
        longest = self.quiet_seconds if self.hearing else self.fallback_seconds
        timeout = longest if seconds is None else min(seconds, longest)
        if self._watcher is None:
            await asyncio.sleep(timeout)
            return
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.generation != seen), timeout)

    async def ring(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def _ring_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.ring()

    async def _watch_files(self, database: Path) -> None:
        files = (database, database.with_name(database.name + "-wal"))
        last = _signature(files)
        self.hearing = True  # every commit changes the files
        while True:
            await asyncio.sleep(self.check_seconds)
            now = _signature(files)
            if now != last:
                last = now
                await self.ring()

    async def _listen(self, url: Any) -> None:
        import psycopg
        from psycopg.generators import notifies

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        down = False
        while True:
            try:
                # TCP keepalives: a connection cut without a word (a network partition, a failover) fails
                # within ~1 min instead of leaving the bell deaf, its waiters reading every quiet period.
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True, keepalives=1, keepalives_idle=30, keepalives_interval=10,
                    keepalives_count=3,
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.hearing = True
                    if down:
                        log.info("listening for outbox commits again")
                        down = False
                    await self.ring()  # whatever was committed while not listening
                    ringing: asyncio.Task[None] | None = None
                    while True:
                        # What `connection.notifies()` does, without its wake-up every 0.1 s (it looks
                        # for an interrupt): 0.003 cores for a listener at rest, all an idle dispatcher
                        # spent. Waiting on the socket alone costs nothing until something arrives.
                        heard = await connection.wait(notifies(connection.pgconn), interval=LISTEN_WAKE_SECONDS)
                        # Every dispatcher hears a commit at the same instant; waking them all at once
                        # would have each start a run for the same events (one wins the claim). So each
                        # rings after a random delay, once for every commit heard meanwhile: a delay per
                        # notification would let a busy outbox (40 commits/s x 25 ms) outrun the bell.
                        if heard and (ringing is None or ringing.done()):
                            ringing = asyncio.create_task(self._ring_after(random.uniform(0, self.check_seconds)))
            except (OSError, psycopg.Error) as error:
                self.hearing = False
                if not down:  # once per outage; the fallback reads the outbox meanwhile, from now on
                    await self.ring()
                    log.warning("cannot listen for outbox commits (%s); reading it every %g s",
                                type(error).__name__, self.fallback_seconds)
                    down = True
                await asyncio.sleep(self.fallback_seconds)


def _signature(files: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    signature = []
    for path in files:
        try:
            status = os.stat(path)
        except FileNotFoundError:
            signature.append((0, 0))
        else:
            signature.append((status.st_size, status.st_mtime_ns))
    return tuple(signature)
