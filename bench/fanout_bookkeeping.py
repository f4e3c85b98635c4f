"""The dispatcher's database work per event, beside the same statements through the driver alone.

For each batch of outbox events the dispatcher makes two transactions:
- **plan** (``tasks.webhooks.fanout._plan_fan_out``): claim the events (``UPDATE ... RETURNING``), read
  their organization's webhooks, create one leased delivery per webhook;
- **record** (``tasks.webhooks.sender.record_attempts``): insert the attempts, settle their deliveries.

This bench runs both on a migrated database (SQLite, and a PostgreSQL it starts) for ``--events``
events of one organization with ``--webhooks`` webhooks, ``--batch`` events per batch, every attempt a
success, and prints the process CPU per event. The baseline writes the same rows with the same
statements through the DB-API driver (``sqlite3``, ``psycopg``) with no SQLAlchemy: what the work would
cost with none of our code or the ORM's. Each side gets fresh events; no HTTP is sent.

    PYTHONPATH=. .venv/bin/python bench/fanout_bookkeeping.py [--events 3000] [--batch 10] [--webhooks 5]
        [--shapes sqlite postgresql] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import migrate  # noqa: E402
from store.db import forget_engines, session_scope  # noqa: E402
from store.events import record_event  # noqa: E402
from store.ids import new_id  # noqa: E402
from store.models import Organization, Webhook  # noqa: E402
from store.settings import get_settings  # noqa: E402
from tasks.webhooks.delivery import AttemptResult  # noqa: E402
from tasks.webhooks.fanout import _plan_fan_out  # noqa: E402
from tasks.webhooks.sender import Settlement, record_attempts  # noqa: E402
from tasks.webhooks.settings import get_webhook_settings  # noqa: E402
from tests.support.databases import PostgresServer, postgres_binaries  # noqa: E402

HEADERS = {"content-type": "application/json", "webhook-id": "msg", "webhook-signature": "v1,sig"}


def seed(url: str, webhooks: int) -> str:
    """An organization with ``webhooks`` webhooks subscribed to ``drift.detected``; its id."""
    organization_id = new_id("org")
    with session_scope(url) as session:
        session.add(Organization(id=organization_id))
        session.flush()
        for index in range(webhooks):
            session.add(Webhook(
                id=new_id("wh"), organization_id=organization_id, name=f"hook {index}",
                url=f"https://hooks{index}.example.com/modelpulse", events=["drift.detected"], header_names=[],
            ))  # fmt: skip
    return organization_id


def write_events(url: str, organization_id: str, count: int) -> list[str]:
    """``count`` outbox events, as the API writes them; their ids, oldest first."""
    ids = []
    with session_scope(url) as session:
        for index in range(count):
            ids.append(record_event(session, organization_id, "drift.detected", {"model": "churn", "n": index}).id)
    return ids


def ours(url: str, event_ids: list[str], batch: int) -> None:
    """Plan and record each batch as the dispatcher does."""
    settings = get_webhook_settings()
    for start in range(0, len(event_ids), batch):
        planned = _plan_fan_out(event_ids[start : start + batch], settings, url)
        results = []
        for target, _ in planned:
            result = AttemptResult(
                delivery_id=target.delivery_id, webhook_id=target.webhook_id, trigger="initial",
                attempted_at=datetime.now(UTC), request_headers=HEADERS, duration_ms=3.0, outcome="succeeded",
                response_status=200, response_body="",
            )  # fmt: skip
            results.append((result, Settlement({"status": "succeeded", "next_attempt_at": None, "last_error": None})))
        record_attempts(results, settings, url)


def driver(
    connect: Callable[[], Any], mark: str, event_ids: list[str], batch: int, organization_id: str, webhooks: list[str]
) -> None:
    """The same statements through the DB-API driver: claim, webhooks, deliveries, attempts, settle."""
    connection = connect()
    cursor = connection.cursor()
    p = mark
    for start in range(0, len(event_ids), batch):
        ids = event_ids[start : start + batch]
        now = datetime.now(UTC).replace(tzinfo=None)
        marks = ", ".join([p] * len(ids))
        cursor.execute(
            f"UPDATE events SET dispatched_at = {p} WHERE id IN ({marks}) AND dispatched_at IS NULL "
            "RETURNING id, organization_id, project_id, type, data, timestamp",
            [now, *ids],
        )
        won = cursor.fetchall()
        cursor.execute(
            f"SELECT id, url, format, config, header_names FROM webhooks WHERE organization_id = {p}", [organization_id]
        )
        cursor.fetchall()
        lease = now + timedelta(seconds=60)
        rows = [
            (new_id("dlv"), row[1], webhook, row[0], row[3], "pending", 0, lease, now, now)
            for row in won
            for webhook in webhooks
        ]
        cursor.executemany(
            "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, event_id, event_type, status, "
            f"attempt_count, next_attempt_at, created_at, updated_at) VALUES ({', '.join([p] * 10)})",
            rows,
        )
        connection.commit()
        attempted = datetime.now(UTC).replace(tzinfo=None)
        cursor.executemany(
            "INSERT INTO webhook_delivery_attempts (delivery_id, attempted_at, trigger, request_headers, "
            f"response_status, response_body, duration_ms, error, succeeded) VALUES ({', '.join([p] * 9)})",
            [(row[0], attempted, "initial", json.dumps(HEADERS), 200, "", 3.0, None, True) for row in rows],
        )
        delivery_ids = [row[0] for row in rows]
        cursor.execute(
            f"UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, status = {p}, "
            f"next_attempt_at = NULL, last_error = NULL, updated_at = {p} "
            f"WHERE id IN ({', '.join([p] * len(delivery_ids))})",
            ["succeeded", attempted, *delivery_ids],
        )
        connection.commit()
    connection.close()


def cpu_ms_per_event(work: Callable[[], None], events: int) -> float:
    started = time.process_time()
    work()
    return (time.process_time() - started) * 1000 / events


def measure(url: str, connect: Callable[[], Any], mark: str, args: argparse.Namespace) -> tuple[float, float]:
    os.environ["MODELPULSE_DATABASE_URL"] = url
    get_settings.cache_clear()
    forget_engines()
    migrate.upgrade(url)
    organization_id = seed(url, args.webhooks)
    with session_scope(url) as session:
        webhooks = [webhook.id for webhook in session.query(Webhook).filter_by(organization_id=organization_id)]
    ours(url, write_events(url, organization_id, 50), args.batch)  # warm: compiled statements, pool
    figures: dict[str, list[float]] = {"ours": [], "driver": []}
    for _ in range(args.rounds):
        event_ids = write_events(url, organization_id, args.events)
        figures["ours"].append(cpu_ms_per_event(partial(ours, url, event_ids, args.batch), args.events))
        event_ids = write_events(url, organization_id, args.events)
        work = partial(driver, connect, mark, event_ids, args.batch, organization_id, webhooks)
        figures["driver"].append(cpu_ms_per_event(work, args.events))
    return median(figures["ours"]), median(figures["driver"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--webhooks", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"{args.events} events x {args.webhooks} webhooks, {args.batch} events per batch, median of {args.rounds}")
    print(f"{'database':<12} {'ours CPU-ms/event':>18} {'driver alone':>14} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="bookkeeping-") as workdir, ExitStack() as stack:
        for shape in args.shapes:
            if shape == "sqlite":
                path = Path(workdir) / "modelpulse.db"
                url = f"sqlite:///{path}"
                connect, mark = partial(sqlite3.connect, path), "?"
            else:
                if postgres_binaries() is None:
                    print("postgresql: skipped (no PostgreSQL binaries; apt-get install postgresql)")
                    continue
                import psycopg

                server = PostgresServer.start_new()
                stack.callback(server.destroy)
                server.create_database("modelpulse")
                url = server.url("modelpulse")
                dsn = url.replace("postgresql+psycopg://", "postgresql://")
                connect, mark = partial(psycopg.connect, dsn), "%s"
            mine, raw = measure(url, connect, mark, args)
            print(f"{shape:<12} {mine:>18.3f} {raw:>14.3f} {mine / raw:>6.1f}x")


if __name__ == "__main__":
    main()
