"""Silences in the fan-out's planner (``tasks.webhooks.fanout``), on SQLite and PostgreSQL: the silence set
version read with the webhook rows, a silence created or expired by another process seen by the next
event, and planners on several threads (dispatchers) each recording the silenced deliveries once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from store import deliveries, silences
from store.db import session_scope
from store.events import record_event
from store.ids import new_id
from store.models import Delivery, Organization, Webhook, utcnow
from tasks.webhooks import fanout
from tasks.webhooks.settings import get_webhook_settings

BREACH = {"model": "fraud", "metric": "drift.psi", "operator": ">", "threshold": 0.2, "value": 0.5}


def organization_with_webhooks(database_url: str, count: int = 2) -> tuple[str, list[str]]:
    with session_scope(database_url) as session:
        organization = f"org-{new_id('x')[-8:].lower()}"
        session.add(Organization(id=organization))
        session.flush()
        hooks = [
            Webhook(
                id=new_id("wh"),
                organization_id=organization,
                name=f"hook-{n}",
                url="https://hooks.example.com/x",
                events=["threshold.breached"],
                header_names=[],
                enabled=True,
            )
            for n in range(count)
        ]
        session.add_all(hooks)
        return organization, [hook.id for hook in hooks]


def publish(database_url: str, organization: str, count: int = 1, model: str = "fraud") -> list[str]:
    with session_scope(database_url) as session:
        return [
            record_event(session, organization, "threshold.breached", BREACH | {"model": model}).id
            for _ in range(count)
        ]


def silence(database_url: str, organization: str, matchers: dict) -> str:
    with session_scope(database_url) as session:
        now = utcnow()
        return silences.create_silence(
            session, organization, matchers, now, now + timedelta(hours=1), "test", "tests"
        ).id


def version(database_url: str, organization: str) -> str | None:
    with session_scope(database_url) as session:
        return session.get(Organization, organization).silence_set_version


def plan(database_url: str, event_ids: list[str]) -> None:
    fanout._plan_fan_out(event_ids, get_webhook_settings(), database_url)


def statuses(database_url: str, event_id: str) -> list[tuple[str, str | None]]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.silence_id).where(Delivery.event_id == event_id).order_by(Delivery.id)
        )
        return [tuple(row) for row in rows]


def test_each_change_is_a_new_version_read_with_the_webhook_rows(database_url):
    organization, hooks = organization_with_webhooks(database_url)
    assert version(database_url, organization) is None
    first = silence(database_url, organization, {"data.model": "fraud"})
    created = version(database_url, organization)
    assert created is not None
    (event_id,) = publish(database_url, organization)
    with session_scope(database_url) as session:
        event = deliveries.events_by_id(session, [event_id])[0]
        webhooks, read = deliveries.subscribed_webhooks(session, event)
        assert [webhook.id for webhook in webhooks] == sorted(hooks) and read == created
        expired = silences.expire_silence(session, silences.get_silence(session, organization, first), utcnow())
        assert expired
    assert version(database_url, organization) not in (None, created)
    with session_scope(database_url) as session:
        again = silences.get_silence(session, organization, first)
        assert silences.silence_state(again, utcnow()) == "expired"
        assert not silences.expire_silence(session, again, utcnow())  # already expired: no new version


def test_a_silence_made_or_expired_elsewhere_judges_the_next_event(database_url):
    organization, hooks = organization_with_webhooks(database_url)
    (before,) = publish(database_url, organization)
    plan(database_url, [before])
    silence_id = silence(database_url, organization, {"data.model": "fraud"})  # another process, say the API
    during, other = publish(database_url, organization)[0], publish(database_url, organization, model="churn")[0]
    plan(database_url, [during, other])
    with session_scope(database_url) as session:
        silences.expire_silence(session, silences.get_silence(session, organization, silence_id), utcnow())
    (after,) = publish(database_url, organization)
    plan(database_url, [after])

    assert statuses(database_url, before) == [("pending", None)] * len(hooks)
    assert statuses(database_url, during) == [("silenced", silence_id)] * len(hooks)
    assert statuses(database_url, other) == [("pending", None)] * len(hooks)
    assert statuses(database_url, after) == [("pending", None)] * len(hooks)


def test_planners_on_several_threads_record_each_silenced_event_once(database_url):
    organization, hooks = organization_with_webhooks(database_url, count=3)
    silence_id = silence(database_url, organization, {"type": "threshold.breached"})
    event_ids = publish(database_url, organization, count=12)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def planner() -> None:
        try:
            start.wait()
            plan(database_url, event_ids)  # every planner tries every event: one claims each
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=planner) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    for event_id in event_ids:
        assert statuses(database_url, event_id) == [("silenced", silence_id)] * len(hooks)
    with session_scope(database_url) as session:
        assert deliveries.undispatched_event_ids(session, 100) == []
        assert deliveries.due_delivery_ids(session, utcnow() + timedelta(days=30), 100) == []
