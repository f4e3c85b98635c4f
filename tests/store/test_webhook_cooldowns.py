"""Dispatchers racing for one throttled group: the fan-out's planner (``tasks.webhooks.fanout``) on several
threads, each with its own connection to one database, SQLite and PostgreSQL. Exactly one opens the
cooldown (its delivery is pending, to be sent); every other gets a suppressed delivery naming it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from store.db import session_scope
from store.events import record_event
from store.ids import new_id
from store.models import Delivery, Organization, Webhook, WebhookCooldown, utcnow
from tasks.webhooks import fanout
from tasks.webhooks.settings import get_webhook_settings

PLANNERS = 6


def throttled_webhook(database_url: str) -> str:
    with session_scope(database_url) as session:
        organization = f"org-{new_id('x')[-8:].lower()}"
        session.add(Organization(id=organization))
        session.flush()
        webhook = Webhook(
            id=new_id("wh"),
            organization_id=organization,
            name="hook",
            url="https://hooks.example.com/x",
            events=["threshold.breached"],
            header_names=[],
            enabled=True,
            throttle={"group_by": ["data.model"], "cooldown_seconds": 3600},
        )
        session.add(webhook)
        return webhook.id


def breaches(database_url: str, webhook_id: str, count: int) -> list[str]:
    data = {"model": "fraud", "metric": "drift.psi", "operator": ">", "threshold": 0.2, "value": 0.5}
    with session_scope(database_url) as session:
        organization = session.get(Webhook, webhook_id).organization_id
        return [record_event(session, organization, "threshold.breached", data).id for _ in range(count)]


def race(database_url: str, event_ids: list[str]) -> list[BaseException]:
    """Each event planned by a planner of its own, all let go at once."""
    settings = get_webhook_settings()
    start = threading.Barrier(len(event_ids))
    errors: list[BaseException] = []

    def plan(event_id: str) -> None:
        try:
            start.wait()
            fanout._plan_fan_out([event_id], settings, database_url)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=plan, args=(event_id,)) for event_id in event_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def statuses(database_url: str, webhook_id: str) -> list[tuple[str, str, str | None]]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.status, Delivery.repeats).where(Delivery.webhook_id == webhook_id)
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("expired", [False, True], ids=["no cooldown yet", "an ended cooldown"])
def test_planners_racing_for_a_group_make_exactly_one_delivery(database_url, expired):
    webhook_id = throttled_webhook(database_url)
    if expired:
        # The group had a cooldown that has ended: the race is for the conditional update, not the insert.
        (opener,) = breaches(database_url, webhook_id, 1)
        assert race(database_url, [opener]) == []
        with session_scope(database_url) as session:
            session.execute(update(WebhookCooldown).values(until=utcnow() - timedelta(seconds=1)))
    before = {row[0] for row in statuses(database_url, webhook_id)}

    assert race(database_url, breaches(database_url, webhook_id, PLANNERS)) == []

    raced = [row for row in statuses(database_url, webhook_id) if row[0] not in before]
    assert len(raced) == PLANNERS
    pending = [row for row in raced if row[1] == "pending"]
    assert len(pending) == 1, raced
    winner = pending[0][0]
    assert sorted(row[1:] for row in raced if row[0] != winner) == [("suppressed", winner)] * (PLANNERS - 1)
    with session_scope(database_url) as session:
        assert list(session.scalars(select(WebhookCooldown.delivery_id))) == [winner]
