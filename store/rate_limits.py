"""The rate limit's shared counters: requests per API key per fixed one-minute window.

Every API process adds its requests to the same row with one upsert that returns the new total, so
the count holds across processes and machines (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``,
the same statement on SQLite >= 3.35 and PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import ApiKeyRequestCount

WINDOW_SECONDS = 60


def window_start(at: float) -> int:
    """The start (unix seconds) of the one-minute window holding the moment ``at`` (unix seconds)."""
    return int(at // WINDOW_SECONDS) * WINDOW_SECONDS


def add_key_requests(session: Session, key_id: str, window: int, requests: int) -> int:
    """Add ``requests`` to the key's count in ``window``; returns the window's total after the addition."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ApiKeyRequestCount).values(key_id=key_id, window_start=window, requests=requests)
    statement = statement.on_conflict_do_update(
        index_elements=[ApiKeyRequestCount.key_id, ApiKeyRequestCount.window_start],
        set_={"requests": ApiKeyRequestCount.requests + statement.excluded.requests},
    ).returning(ApiKeyRequestCount.requests)
    return session.execute(statement).scalar_one()


def prune_key_request_counts(session: Session, before_window: int) -> int:
    """Delete the counts of every window that started before ``before_window``; returns how many."""
    return session.execute(
        delete(ApiKeyRequestCount)
        .where(ApiKeyRequestCount.window_start < before_window)
        .execution_options(synchronize_session=False)
    ).rowcount
