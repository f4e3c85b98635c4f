"""A watermark never passes a record that can still appear: ids are handed out before commit.

On PostgreSQL a transaction that is still open can commit a smaller id after a larger one became
visible; ``settled_through`` waits for it. Events carry ids made in Python before their row is
written, so only events older than the settle window are read.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from store.db import get_sessionmaker, session_scope
from store.export_streams import PageQuery, read_page, settled_through
from store.ids import new_id
from store.models import Event, InferenceLog, Organization
from store.settings import get_settings


def _log(org_id: str, request_id: str) -> dict:
    return {
        "organization_id": org_id,
        "model": "churn",
        "timestamp": datetime(2026, 11, 1, tzinfo=UTC),
        "request_id": request_id,
        "features": {"age": 30},
        "prediction": {"churn": 0.2},
    }


@pytest.fixture
def org_id(database_url) -> str:
    org = new_id("org")
    with session_scope(database_url) as session:
        session.add(Organization(id=org))
    return org


def test_a_smaller_id_still_uncommitted_holds_the_position_back(database_url, org_id):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite hands out ids under its one write lock: a larger id cannot commit first")
    slow = get_sessionmaker(database_url)()
    try:
        slow.execute(insert(InferenceLog), [_log(org_id, "slow")])  # id handed out, not committed
        with session_scope(database_url) as session:
            session.execute(insert(InferenceLog), [_log(org_id, "fast")])  # a larger id, committed first

        positions: list[str | None] = []

        def settle() -> None:
            with session_scope(database_url) as session:
                positions.append(settled_through(session, "inference_logs"))

        reader = threading.Thread(target=settle)
        reader.start()
        time.sleep(0.5)
        assert positions == []  # it waits for the slow writer instead of settling on the larger id
        slow.commit()
        reader.join(timeout=30)
    finally:
        slow.close()

    (through,) = positions
    with session_scope(database_url) as session:
        page = read_page(session, PageQuery("inference_logs", org_id, through=through), 100)
    assert [record["request_id"] for record in sorted(page, key=lambda r: r["id"])] == ["slow", "fast"]


def test_events_wait_out_the_settle_window(database_url, org_id, monkeypatch):
    monkeypatch.setenv("MODELPULSE_EXPORT_EVENT_SETTLE_SECONDS", "60")
    get_settings.cache_clear()
    now = datetime.now(UTC)
    with session_scope(database_url) as session:
        for age in (timedelta(minutes=5), timedelta(seconds=90), timedelta(seconds=5)):
            moment = now - age
            session.add(
                Event(
                    id=new_id("evt", at=moment),
                    organization_id=org_id,
                    type="drift.detected",
                    data={"age_seconds": age.total_seconds()},
                    timestamp=moment,
                    dispatched_at=moment,
                )
            )
    try:
        with session_scope(database_url) as session:
            through = settled_through(session, "events")
            page = read_page(session, PageQuery("events", org_id, through=through), 100)
    finally:
        get_settings.cache_clear()
    assert [record["data"]["age_seconds"] for record in page] == [300.0, 90.0]


def test_an_empty_stream_has_no_settled_position(database_url):
    with session_scope(database_url) as session:
        assert settled_through(session, "drift_metrics") is None
