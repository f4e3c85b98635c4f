"""Engine and session factory. Callers own the transaction (``with session_scope() as s``)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from store.settings import get_settings


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for concurrent writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if url.startswith("postgresql"):
        # connect_timeout: an unreachable server fails a request in seconds instead of hanging it.
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        check_on_checkout(engine)
        return engine
    # pre-ping: a connection the server dropped (a restart, a failover) is replaced, not handed out.
    return create_engine(url, pool_pre_ping=True)


# A pooled connection idle longer than this is pinged before it is handed out (a peer gone without a
# word: a host that crashed, a firewall that forgot an idle connection); one used more recently only
# when its socket has something to read.
PING_AFTER_IDLE_SECONDS = 30.0


def check_on_checkout(engine: Engine) -> None:
    """Hand out no pooled connection the server has dropped, as ``pool_pre_ping`` does, without its
    round trip on every checkout.

    A server that ends a connection (a restart, a failover, ``pg_terminate_backend``, an idle timeout)
    says so on its socket: an error, then end of file. An idle connection whose socket has nothing to
    read and that was used in the last ``PING_AFTER_IDLE_SECONDS`` is handed out as it is; any other is
    pinged (``SELECT 1``), and replaced when the ping fails. Pre-ping cost every transaction a round trip:
    2.6 of the 7.5 statements the dispatchers sent per event (bench/RESULTS.md).
    """

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        idle = time.monotonic() - record.info.get("returned_at", 0.0)
        try:
            fileno = getattr(dbapi_connection, "fileno", None)  # psycopg, psycopg2; other drivers: always a ping
            if fileno is not None and idle < PING_AFTER_IDLE_SECONDS and not _has_input(fileno()):
                return
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # As pre-ping does: the server probably restarted, so every connection made before is stale.
            raise exc.InvalidatePoolError(f"a pooled connection failed its ping: {error}") from error


def _has_input(fileno: int) -> bool:
    """Whether the socket has something to read, or is closed or failed (one poll, no wait)."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().resolved_database_url)


@lru_cache
def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@lru_cache
def get_read_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url).execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


def forget_engines() -> None:
    """Drop the cached engines and session factories (the next use reads the settings again)."""
    get_read_sessionmaker.cache_clear()
    get_sessionmaker.cache_clear()
    get_engine.cache_clear()


@contextmanager
def read_scope(url: str | None = None) -> Iterator[Session]:
    """Reads outside a transaction, for a loop that polls: each statement sees what was committed before
    it, and no ``BEGIN`` or ``COMMIT`` is sent (on PostgreSQL, one round trip per query instead of three).
    Only for reads: a write through it would commit at once."""
    session = get_read_sessionmaker(url)()
    try:
        yield session
    finally:
        session.close()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
