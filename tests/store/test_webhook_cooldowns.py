"""Dispatchers racing for one throttled group: the fan-out's planner (``tasks.webhooks.fanout``) on several
threads, each with its own connection to one database, SQLite and PostgreSQL. Exactly one opens the
cooldown (its delivery is pending, to be sent); every other gets a suppressed delivery naming it. Batches
claiming overlapping groups in different orders neither deadlock nor share a group, and the sweep of
ended cooldowns never waits for a claimer."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from store import throttles
from store.db import session_scope
from store.events import record_event
from store.ids import new_id
from store.models import Delivery, Event, Organization, Webhook, WebhookCooldown, utcnow
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


GROUPS = 8  # models: each planner's batch has an event of every one of them
BATCH_PLANNERS = 8


def throttled_webhooks(database_url: str, count: int) -> list[str]:
    """``count`` webhooks of one organization, each throttling threshold.breached by data.model."""
    with session_scope(database_url) as session:
        organization = f"org-{new_id('x')[-8:].lower()}"
        session.add(Organization(id=organization))
        session.flush()
        ids = []
        for index in range(count):
            webhook = Webhook(
                id=new_id("wh"),
                organization_id=organization,
                name=f"hook-{index}",
                url=f"https://hooks.example.com/{index}",
                events=["threshold.breached"],
                header_names=[],
                enabled=True,
                throttle={"group_by": ["data.model"], "cooldown_seconds": 3600},
            )
            session.add(webhook)
            ids.append(webhook.id)
        return ids


def batches_over_overlapping_groups(database_url: str, webhook_id: str) -> list[list[str]]:
    """One batch per planner, each with an event of every model, the models in a rotated order (planner i
    starts at model i): two planners' batches claim the same groups in different orders."""
    with session_scope(database_url) as session:
        organization = session.get(Webhook, webhook_id).organization_id
        batches = []
        for planner in range(BATCH_PLANNERS):
            batch = []
            for step in range(GROUPS):
                model = f"model-{(planner + step) % GROUPS}"
                data = {"model": model, "metric": "drift.psi", "operator": ">", "threshold": 0.2, "value": 0.5}
                batch.append(record_event(session, organization, "threshold.breached", data).id)
            batches.append(batch)
        return batches


@pytest.mark.parametrize("ended", [False, True], ids=["new groups", "ended cooldowns being pruned"])
def test_planners_claiming_overlapping_groups_in_different_orders_neither_deadlock_nor_share_a_group(
    database_url, ended
):
    """Several dispatchers' batches, each claiming the cooldowns of every group of two webhooks in its own
    order, all at once: none fails (on PostgreSQL, rows locked in opposite orders would deadlock and one
    transaction would be aborted), and each (webhook, group) has exactly one pending delivery. With
    ``ended``, every group has a cooldown that has ended and the history sweep prunes them meanwhile."""
    webhook_ids = throttled_webhooks(database_url, 2)
    before: set[str] = set()
    if ended:
        opening = batches_over_overlapping_groups(database_url, webhook_ids[0])[0]
        fanout._plan_fan_out(opening, get_webhook_settings(), database_url)
        with session_scope(database_url) as session:
            session.execute(update(WebhookCooldown).values(until=utcnow() - timedelta(seconds=1)))
            before = set(session.scalars(select(Delivery.id)))
    batches = batches_over_overlapping_groups(database_url, webhook_ids[0])
    settings = get_webhook_settings()
    start = threading.Barrier(len(batches) + ended)
    errors: list[BaseException] = []

    def plan(batch: list[str]) -> None:
        try:
            start.wait()
            fanout._plan_fan_out(batch, settings, database_url)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    def prune() -> None:
        try:
            start.wait()
            for _ in range(20):
                with session_scope(database_url) as session:
                    throttles.prune_ended_cooldowns(session, utcnow(), 1000)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=plan, args=(batch,)) for batch in batches]
    if ended:
        threads.append(threading.Thread(target=prune))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a planner is still waiting"
    assert errors == []

    with session_scope(database_url) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.webhook_id, Delivery.status, Delivery.repeats, Event.data["model"].as_string())
            .join(Event, Event.id == Delivery.event_id)
            .where(Delivery.webhook_id.in_(webhook_ids))
        ).all()
        rows = [row for row in rows if row.id not in before]
        cooldowns = {
            (row.webhook_id, row.group["data.model"][0]): row.delivery_id
            for row in session.scalars(select(WebhookCooldown).where(WebhookCooldown.webhook_id.in_(webhook_ids)))
        }
    assert len(rows) == len(webhook_ids) * GROUPS * BATCH_PLANNERS
    for webhook_id in webhook_ids:
        for group in range(GROUPS):
            model = f"model-{group}"
            mine = [row for row in rows if row.webhook_id == webhook_id and row[4] == model]
            pending = [row.id for row in mine if row.status == "pending"]
            assert len(pending) == 1, (webhook_id, model, mine)
            assert cooldowns[(webhook_id, model)] == pending[0]
            assert sorted((row.status, row.repeats) for row in mine if row.id != pending[0]) == [
                ("suppressed", pending[0])
            ] * (BATCH_PLANNERS - 1)


def test_the_sweep_of_ended_cooldowns_never_waits_for_a_claimer(database_url):
    """A dispatcher holds one ended cooldown (it is claiming that group again) while the history sweep
    prunes: the sweep deletes the others and skips that one instead of waiting for it. A sweep that waited
    there, holding a row it had deleted that the dispatcher claims next, would deadlock with it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: the sweep waits for the dispatcher's transaction there")
    (webhook_id,) = throttled_webhooks(database_url, 1)
    past = utcnow() - timedelta(hours=2)
    groups = [{"data.model": [f"model-{index}"]} for index in range(2)]
    with session_scope(database_url) as session:
        for index, group in enumerate(groups):
            throttles.claim_cooldown(
                session, webhook_id, "threshold.breached", group, f"dlv_old{index}", past, timedelta(hours=1)
            )
    swept: list[int] = []
    with session_scope(database_url) as claimer:
        throttles.lock_cooldowns(claimer, [webhook_id])
        assert throttles.claim_cooldown(
            claimer, webhook_id, "threshold.breached", groups[1], "dlv_new1", utcnow(), timedelta(hours=1)
        ) is None

        def sweep() -> None:
            with session_scope(database_url) as session:
                swept.append(throttles.prune_ended_cooldowns(session, utcnow(), 100))

        sweeper = threading.Thread(target=sweep)
        sweeper.start()
        sweeper.join(10)
        assert not sweeper.is_alive(), "the sweep waits for the dispatcher's transaction"
        assert swept == [1]
        assert throttles.claim_cooldown(
            claimer, webhook_id, "threshold.breached", groups[0], "dlv_new0", utcnow(), timedelta(hours=1)
        ) is None
    with session_scope(database_url) as session:
        assert sorted(session.scalars(select(WebhookCooldown.delivery_id))) == ["dlv_new0", "dlv_new1"]
