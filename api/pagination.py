"""Keyset pagination over time-ordered ids: ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.errors import Unprocessable
from api.schemas.common import PageQuery


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value or "\x00" in value:
        raise Unprocessable.field("query.cursor", "not a cursor this API returned")
    return value


def page_offset(page: PageQuery) -> int:
    """Where a page of a live read (not a table here) starts: 0, or the position ``next_cursor`` carries."""
    if not page.cursor:
        return 0
    try:
        start = int(decode_cursor(page.cursor))
    except ValueError:
        start = -1
    if start < 0:
        raise Unprocessable.field("query.cursor", "not a cursor this API returned")
    return start


def paginate(
    session: Session,
    statement: Select[Any],
    key: InstrumentedAttribute[Any],
    page: PageQuery,
    *,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """Run ``statement`` one page at a time, ordered by the unique ``key``; returns rows and next cursor."""
    if page.cursor:
        after = decode_cursor(page.cursor)
        if isinstance(key.type.python_type, type) and key.type.python_type is int:
            try:
                after = int(after)  # type: ignore[assignment]
            except ValueError:
                raise Unprocessable.field("query.cursor", "not a cursor this API returned") from None
        statement = statement.where(key < after if descending else key > after)
    statement = statement.order_by(key.desc() if descending else key).limit(page.limit + 1)
    rows = list(session.scalars(statement))
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, encode_cursor(str(getattr(rows[-1], key.key)))
