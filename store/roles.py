"""A role one process holds at a time among every process on the database: a PostgreSQL session-level
advisory lock, held on a connection of the role's own for as long as the process keeps it.

The holder keeps the role until it gives it up (``release``), its connection ends (the process died,
was killed, or lost the database: PostgreSQL drops a session's locks with the session), or the database
restarts. The others ask again now and then (``held`` takes the role when it is free), so one of them
follows within one of their intervals.

A holder learns that its connection ended only when it next asks: until then two processes may both act
as holders for a moment. A role guards work that is safe to repeat (emitting Prefect events under fixed
ids), and saves doing it twice the rest of the time.

SQLite has no advisory locks, and its one writer is one machine's file: every process holds every role.

Example:
    ```python
    role = Role("prefect-publisher")
    if role.held():
        ...  # do the role's work
    role.release()  # at exit, or when this process cannot do the work for now
    ```
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, exc, select
from sqlalchemy import func as sql

from store.db import get_engine

# The first of the two keys of every role's lock (PostgreSQL's two-int4 form), apart from the one-key
# locks other software on the database may take and from store.throttles' ("mpcd"): "mprl" as an int4.
LOCK_CLASS = int.from_bytes(b"mprl", "big", signed=True)


class Role:
    """One role, by name; ``held()`` says whether this process holds it (taking it when free)."""

    def __init__(self, name: str, database_url: str | None = None) -> None:
        self.name = name
        self.database_url = database_url
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
        self._connection: Connection | None = None
        self._holding = False

    def held(self) -> bool:
        """Whether this process holds the role now: one round trip to check a role it holds is still
        its own (its connection is alive), or to take it if it is free. A database error is "no" (and
        the next call starts on a new connection)."""
        engine = get_engine(self.database_url)
        if engine.dialect.name != "postgresql":
            return True
        try:
            if self._connection is None:
                self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if self._holding:  # a session keeps its locks: a live connection is a held role
                self._connection.execute(select(1))
            else:
                self._holding = bool(
                    self._connection.execute(select(sql.pg_try_advisory_lock(LOCK_CLASS, self.key))).scalar()
                )
        except exc.DBAPIError:
            self.release()
            return False
        return self._holding

    def release(self) -> None:
        """Give the role up (another process may take it at once): the lock, and the connection, end."""
        connection, holding, self._connection, self._holding = self._connection, self._holding, None, False
        if connection is not None:
            try:
                # Unlocked at once: a closed connection's session ends a moment later, on the server.
                if holding and not connection.invalidated:
                    connection.execute(select(sql.pg_advisory_unlock(LOCK_CLASS, self.key)))
            except exc.SQLAlchemyError:
                pass  # the connection failed: its session, and the lock, are gone or going
            try:
                connection.invalidate()  # closed, not returned to the pool: the session must end
                connection.close()
            except exc.DBAPIError:
                pass
