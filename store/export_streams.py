"""What an export can ship: the streams, and pages of their records past a position.

A stream is a table with a monotonically assigned id (integers for inference logs and drift metrics,
sortable ``evt_`` ids for events) and a time column. Pages are read in id order ("keyset"
pagination), so a watermark is simply the id of the last acknowledged record.

A watermark may only pass ids that can no longer appear: ids are handed out before their transaction
commits, so a transaction still open can commit a smaller id after a larger one was exported. Each
run therefore reads only up to ``settled_through``: on PostgreSQL it waits for the transactions
writing the table to finish (a momentary SHARE lock) and takes the largest id then, since every id
handed out later is larger; SQLite hands out integer ids under its single write lock, in commit
order. ``evt_`` ids are made in Python before their row is written, so events are read only once
their id is ``MODELPULSE_EXPORT_EVENT_SETTLE_SECONDS`` old.

Rows come back as plain dicts of wire-ready values (Core ``select``, no ORM objects, no type
processing in Python): times as RFC 3339 UTC text formatted by the database, and a telemetry row's
JSON columns as the JSON text the database holds, wrapped in ``orjson.Fragment`` so a sink writes it
out without ever parsing it. An event's ``data`` is parsed: sinks read its ``model``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import JSON, Column, ColumnElement, Select, String, Table, Text, cast, func, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from store.ids import id_floor
from store.models import DriftMetric, Event, InferenceLog, utcnow
from store.models.base import UTCDateTime
from store.settings import get_settings


class rfc3339(FunctionElement[str]):  # noqa: N801 (SQL functions read as lower case)
    """A UTC timestamp column as RFC 3339 text with microseconds: ``2026-11-01T00:00:00.000000Z``."""

    type = String()
    name = "rfc3339"
    inherit_cache = True


@compiles(rfc3339, "sqlite")
def _rfc3339_sqlite(element: rfc3339, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as naive UTC "YYYY-MM-DD HH:MM:SS.ffffff".
    return f"replace({compiler.process(element.clauses, **kw)}, ' ', 'T') || 'Z'"


@compiles(rfc3339, "postgresql")
def _rfc3339_postgresql(element: rfc3339, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


@dataclass(frozen=True)
class Stream:
    """How one stream is read: its table, its time column and how its ids become record ids."""

    name: str
    table: Table
    time_column: str
    id_prefix: str | None  # integer ids get a prefix so record ids are unique across streams
    parsed_json: frozenset[str] = frozenset()  # JSON columns sinks look into

    @property
    def id_column(self) -> Column[Any]:
        return self.table.c.id

    def record_id(self, raw_id: Any) -> str:
        """The id a record carries in every sink (`_id`, `modelpulse.id`)."""
        return f"{self.id_prefix}_{raw_id}" if self.id_prefix else str(raw_id)

    def position_value(self, position: str) -> Any:
        """A stored watermark back in the id column's type."""
        return int(position) if self.id_prefix else position

    @cached_property
    def export_columns(self) -> list[ColumnElement[Any]]:
        """The table's columns as sinks read them: times as RFC 3339 text, JSON as its text."""
        columns: list[ColumnElement[Any]] = []
        for column in self.table.c:
            if isinstance(column.type, UTCDateTime):
                columns.append(rfc3339(column).label(column.name))
            elif isinstance(column.type, JSON) and column.name not in self.parsed_json:
                columns.append(cast(column, Text).label(column.name))
            else:
                columns.append(column)
        return columns

    @cached_property
    def fragment_columns(self) -> tuple[str, ...]:
        """The JSON columns passed through as text (see `export_columns`)."""
        return tuple(
            c.name for c in self.table.c if isinstance(c.type, JSON) and c.name not in self.parsed_json
        )


STREAMS: dict[str, Stream] = {
    "inference_logs": Stream("inference_logs", InferenceLog.__table__, "timestamp", "inf"),
    "drift_metrics": Stream("drift_metrics", DriftMetric.__table__, "computed_at", "drm"),
    "events": Stream("events", Event.__table__, "timestamp", None, parsed_json=frozenset({"data"})),
}


@dataclass(frozen=True)
class PageQuery:
    """Which records a page holds: an organization (and project), past ``after``, within a time range."""

    stream: str
    organization_id: str
    project_id: str | None = None
    after: str | None = None
    through: str | None = None  # the last position to read (see ``settled_through``)
    since: datetime | None = None
    until: datetime | None = None


def page_ends(session: Session, query: PageQuery, page_size: int, pages: int) -> list[str]:
    """The last position of each of the next ``pages`` pages of ``page_size`` records past
    ``query.after`` (fewer at the end of the stream). Each end is one ``OFFSET`` step along the id
    index, which the database takes without handing any row to Python.

    Example:
        >>> page_ends(session, PageQuery("inference_logs", "org_1", after="41"), 5000, 3)  # doctest: +SKIP
        ['5041', '10041', '12007']
    """
    stream = STREAMS[query.stream]
    ends: list[str] = []
    after = query.after
    while len(ends) < pages:
        page = replace(query, after=after)
        full = _filtered(select(stream.id_column), page).order_by(stream.id_column).offset(page_size - 1).limit(1)
        end = session.scalar(full)
        if end is None:  # a last, shorter page (or none)
            end = session.scalar(_filtered(select(func.max(stream.id_column)), page))
            if end is not None:
                ends.append(str(end))
            break
        after = str(end)
        ends.append(after)
    return ends


def read_page(session: Session, query: PageQuery, limit: int) -> list[dict[str, Any]]:
    """Return up to ``limit`` records after ``query.after`` in id order, each a dict of its columns.

    Every dict also carries ``record_id`` (see `Stream.record_id`). Values are wire-ready (see the
    module docstring).

    Example:
        >>> read_page(session, PageQuery("inference_logs", "org_1", after="41"), 5000)  # doctest: +SKIP
        [{'id': 42, 'record_id': 'inf_42', 'model': 'churn',
          'timestamp': '2026-11-01T00:00:00.000000Z', 'features': Fragment(...), ...}, ...]
    """
    stream = STREAMS[query.stream]
    statement = _filtered(select(*stream.export_columns), query)
    statement = statement.order_by(stream.id_column).limit(limit)
    result = session.execute(statement)
    names = tuple(result.keys())
    fragments = stream.fragment_columns
    fragment = orjson.Fragment
    records = []
    for row in result:
        record = dict(zip(names, row, strict=True))
        for name in fragments:
            if record[name] is not None:
                record[name] = fragment(record[name])
        record["record_id"] = stream.record_id(record["id"])
        records.append(record)
    return records


def _filtered(statement: Select[Any], query: PageQuery) -> Select[Any]:
    """``statement`` limited to the query's organization (and project), positions and time range."""
    stream = STREAMS[query.stream]
    table = stream.table
    statement = statement.where(table.c.organization_id == query.organization_id)
    if query.project_id is not None:
        statement = statement.where(table.c.project_id == query.project_id)
    if query.after is not None:
        statement = statement.where(stream.id_column > stream.position_value(query.after))
    if query.through is not None:
        statement = statement.where(stream.id_column <= stream.position_value(query.through))
    time_column = table.c[stream.time_column]
    if query.since is not None:
        statement = statement.where(time_column >= query.since)
    if query.until is not None:
        statement = statement.where(time_column < query.until)
    return statement


def settled_through(session: Session, stream_name: str) -> str | None:
    """The last position of ``stream_name`` a watermark may reach now (``None``: nothing yet).

    Run it in a transaction of its own: on PostgreSQL it holds a SHARE lock on the table (new
    writes wait) until that transaction ends.
    """
    stream = STREAMS[stream_name]
    if stream.id_prefix is None:  # ids made before the write: only those old enough are final
        settle = timedelta(seconds=get_settings().export_event_settle_seconds)
        floor = f"evt_{id_floor(utcnow() - settle)}"
        return session.scalar(select(func.max(stream.id_column)).where(stream.id_column < floor))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL lock_timeout = '10s'"))
        session.execute(text(f"LOCK TABLE {stream.table.name} IN SHARE MODE"))
    newest = session.scalar(select(func.max(stream.id_column)))
    return None if newest is None else str(newest)
