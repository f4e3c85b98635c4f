"""The retry sweep keeps the delivery history bounded: settled deliveries past the retention window
go, with their attempts; recent ones and those still open stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from store.db import session_scope
from store.ids import new_id
from store.models import Delivery, DeliveryAttempt, Event, Organization, Webhook, utcnow
from tasks.webhooks.history import prune_delivery_history


def test_settled_deliveries_past_the_window_are_deleted_with_their_attempts(database_url):
    now = utcnow()
    with session_scope(database_url) as session:
        session.add(Organization(id="org-retention"))
        session.flush()
        webhook = Webhook(
            id=new_id("wh"), organization_id="org-retention", name="hook", url="https://hooks.example.com/x",
            events=["drift.detected"], header_names=[], enabled=True,
        )
        session.add(webhook)
        session.flush()
        cases = {
            "old succeeded": (timedelta(days=40), "succeeded"),
            "old failed": (timedelta(days=31), "failed"),
            "old still retrying": (timedelta(days=40), "retrying"),
            "recent succeeded": (timedelta(days=29), "succeeded"),
        }
        ids = {}
        for name, (age, status) in cases.items():
            event = Event(
                id=new_id("evt", at=now - age), organization_id="org-retention", type="drift.detected",
                data={}, timestamp=now - age, dispatched_at=now - age,
            )
            session.add(event)
            session.flush()
            delivery = Delivery(
                id=new_id("dlv", at=now - age), organization_id="org-retention", webhook_id=webhook.id,
                event_id=event.id, event_type=event.type, status=status, attempt_count=1,
            )
            session.add(delivery)
            session.flush()
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id, attempted_at=now - age, trigger="initial", request_headers={},
                    duration_ms=3.0, succeeded=status == "succeeded",
                )
            )
            ids[name] = delivery.id

    assert prune_delivery_history(database_url=database_url) == 2

    with session_scope(database_url) as session:
        kept = set(session.scalars(select(Delivery.id)))
        attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt))
        events = session.scalar(select(func.count()).select_from(Event))
    assert kept == {ids["old still retrying"], ids["recent succeeded"]}
    assert attempts == 2
    assert events == 4  # events are an export stream: the history retention leaves them alone
