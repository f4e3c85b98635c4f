"""Data access for webhook deliveries: fan-out bookkeeping, the retry schedule and the history.

Every function takes the session; the caller owns the transaction. Claims are single ``UPDATE``
statements guarded by their ``WHERE`` clause, so two processes racing for one event or one due
delivery cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.orm import Session

from store.event_catalog import about_webhook
from store.events import record_event
from store.ids import id_floor, new_id
from store.models import Delivery, DeliveryAttempt, Event, Organization, Webhook

OPEN_STATUSES = ("pending", "retrying")
# Settled: succeeded, failed, suppressed (a throttled repeat, never sent; ``store.throttles``) and
# silenced (an event a silence matched, never sent; ``store.silences``).
# What recover sends again by default: deliveries whose last attempt did not succeed.
RECOVERABLE_STATUSES = ("retrying", "failed")
# What recover may be asked to send: those, and silenced deliveries (after a maintenance window).
RECOVER_STATUS_CHOICES = ("retrying", "failed", "silenced")


def claim_events(session: Session, event_ids: Sequence[str], now: datetime) -> list[Event]:
    """Mark outbox events dispatched; return those this caller won (in the order of ``event_ids``).

    One ``UPDATE ... RETURNING`` for the batch: an event is won by the one transaction whose update finds
    it still undispatched (PostgreSQL re-checks the condition on a row another transaction claimed
    meanwhile, SQLite has one writer), whichever dispatcher asks.
    """
    if not event_ids:
        return []
    won = session.scalars(
        update(Event)
        .where(Event.id.in_(event_ids), Event.dispatched_at.is_(None))
        .values(dispatched_at=now)
        .returning(Event)
        .execution_options(synchronize_session=False)
    )
    events = {event.id: event for event in won}
    return [events[event_id] for event_id in dict.fromkeys(event_ids) if event_id in events]


def events_by_id(session: Session, event_ids: Sequence[str]) -> list[Event]:
    """The events with these ids, in id order."""
    return list(session.scalars(select(Event).where(Event.id.in_(event_ids)).order_by(Event.id)))


def matching_webhooks(session: Session, event: Event) -> list[Webhook]:
    """Enabled webhooks of the event's organization subscribed to its type and project."""
    return subscribed_webhooks(session, event)[0]


def subscribed_webhooks(session: Session, event: Event) -> tuple[list[Webhook], str | None]:
    """Enabled webhooks of the event's organization subscribed to its type and project, and the
    organization's ``silence_set_version`` (``store.silences``), read in the same statement.

    An operational event (``webhook.disabled``, ``delivery.exhausted``) never goes to the webhook it
    is about: that receiver is the one in trouble, and a failure there would report itself forever.
    """
    subject = about_webhook(event.type, event.data)
    rows = session.execute(
        select(Webhook, Organization.silence_set_version)
        .join(Organization, Organization.id == Webhook.organization_id)
        .where(Webhook.organization_id == event.organization_id, Webhook.enabled.is_(True))
        .where((Webhook.project_id.is_(None)) | (Webhook.project_id == event.project_id))
        .order_by(Webhook.id)
    ).all()
    version = rows[0][1] if rows else None
    # `events` is a JSON list; filtering it in Python keeps SQLite and PostgreSQL alike.
    webhooks = [webhook for webhook, _ in rows if event.type in webhook.events and webhook.id != subject]
    return webhooks, version


def create_deliveries(
    session: Session,
    event: Event,
    webhooks: Sequence[Webhook],
    lease_until: datetime,
    ids: Sequence[str] | None = None,
    suppressed: dict[str, str] | None = None,
) -> list[str]:
    """One ``pending`` delivery per webhook, leased to the caller until ``lease_until``; returns their
    ids, in the order of ``webhooks`` (``delivery_rows`` says more). A batch of events inserts the rows of
    all of them at once: ``delivery_rows`` then ``insert_deliveries``."""
    rows, sending = delivery_rows(event, webhooks, lease_until, ids, suppressed)
    insert_deliveries(session, rows)
    return sending


def delivery_rows(
    event: Event,
    webhooks: Sequence[Webhook],
    lease_until: datetime,
    ids: Sequence[str] | None = None,
    suppressed: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of an event's new deliveries, and the ids of those to send (in the order of ``webhooks``).

    One ``pending`` delivery per webhook, leased until ``lease_until``; ``ids``: their ids, made beforehand
    (a cooldown names the delivery that opened it). ``suppressed`` maps the webhooks whose throttle holds
    the event back to the delivery it repeats: theirs are created settled (``suppressed``, never sent).
    """
    sending = [
        _delivery_row(event, webhook.id, lease_until, ids[index] if ids else None)
        for index, webhook in enumerate(webhooks)
    ]
    held = [
        _delivery_row(event, webhook_id, status="suppressed", repeats=repeats)
        for webhook_id, repeats in (suppressed or {}).items()
    ]
    return [*sending, *held], [row["id"] for row in sending]


def create_silenced_deliveries(
    session: Session, event: Event, webhook_ids: Sequence[str], silence_id: str
) -> None:
    """One settled ``silenced`` delivery per webhook, naming the silence that matched the event (never sent)."""
    rows = [_delivery_row(event, webhook_id, status="silenced", silence_id=silence_id) for webhook_id in webhook_ids]
    insert_deliveries(session, rows)


def insert_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new deliveries' rows (``delivery_rows``) in one statement."""
    # Without the ORM's unit of work: the fan-out creates five or more per event, and building,
    # tracking and flushing objects cost twice the statement.
    if rows:
        session.execute(insert(Delivery.__table__), rows)


def _delivery_row(
    event: Event,
    webhook_id: str,
    next_attempt_at: datetime | None = None,
    delivery_id: str | None = None,
    status: str = "pending",
    repeats: str | None = None,
    silence_id: str | None = None,
) -> dict[str, Any]:
    """A new delivery's columns: ``pending``, or recorded settled (``suppressed``, ``silenced``: never due)."""
    return {
        "id": delivery_id or new_id("dlv"),
        "organization_id": event.organization_id,
        "webhook_id": webhook_id,
        "event_id": event.id,
        "event_type": event.type,
        "status": status,
        "attempt_count": 0,
        "next_attempt_at": next_attempt_at,
        "repeats": repeats,
        "silence_id": silence_id,
    }


def due_delivery_ids(session: Session, now: datetime, limit: int) -> list[str]:
    """Open deliveries whose next attempt (or expired lease) is due, oldest due first."""
    return list(
        session.scalars(
            select(Delivery.id)
            .where(Delivery.status.in_(OPEN_STATUSES), Delivery.next_attempt_at <= now)
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
        )
    )


def claim_delivery(session: Session, delivery_id: str, now: datetime, lease_until: datetime) -> bool:
    """Lease a due open delivery to the caller; ``False`` when someone else holds it."""
    return bool(
        session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status.in_(OPEN_STATUSES),
                Delivery.next_attempt_at <= now,
            )
            .values(next_attempt_at=lease_until)
        ).rowcount
    )


def delivery_with_context(session: Session, delivery_id: str) -> tuple[Delivery, Webhook, Event] | None:
    """A delivery with its webhook and event, or ``None``."""
    row = session.execute(
        select(Delivery, Webhook, Event)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.id == delivery_id)
    ).first()
    return (row[0], row[1], row[2]) if row else None


def add_attempts(session: Session, attempts: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Record attempts, each ``(delivery_id, fields)`` (``attempted_at``, ``trigger``, ``request_headers``,
    ``response_*``...), in one statement."""
    if attempts:
        rows = [{"delivery_id": delivery_id, **fields} for delivery_id, fields in attempts]
        session.execute(insert(DeliveryAttempt.__table__), rows)  # Core: no ORM bookkeeping per row


def settle_deliveries(session: Session, settlements: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """``settle_delivery`` for each ``(delivery_id, changes)``, one attempt each: one statement per set of
    identical changes (every delivery that succeeded shares one). A delivery settled twice in the batch
    (an inline retry) is settled in order, one statement each."""
    ids = [delivery_id for delivery_id, _ in settlements]
    if len(set(ids)) < len(ids):
        for delivery_id, changes in settlements:
            settle_delivery(session, delivery_id, **changes)
        return
    groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
    for delivery_id, changes in settlements:
        groups.setdefault(tuple(sorted(changes.items())), []).append(delivery_id)
    for changes, delivery_ids in groups.items():
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .values(attempt_count=Delivery.attempt_count + 1, **dict(changes))
            # The batch's deliveries are not loaded in the session: nothing to bring up to date.
            .execution_options(synchronize_session=False)
        )


def settle_delivery(
    session: Session, delivery_id: str, attempts_made: int = 1, **changes: Any
) -> None:
    """Count ``attempts_made`` more attempts and apply ``changes`` (``status``,
    ``next_attempt_at``, ``last_error``); a column left out keeps its value."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(attempt_count=Delivery.attempt_count + attempts_made, **changes)
    )


def create_test_delivery(session: Session, webhook: Webhook, now: datetime) -> Delivery:
    """A ``webhook.test`` event for one webhook and its delivery, outside the fan-out.

    The event is stored already dispatched (and published), so neither the fan-out nor the sweep sends it
    to anyone else.
    """
    event = Event(
        id=new_id("evt"),
        organization_id=webhook.organization_id,
        project_id=webhook.project_id,
        type="webhook.test",
        data={"webhook_id": webhook.id, "message": "This is a test event from ModelPulse."},
        timestamp=now,
        dispatched_at=now,
        # Nor is it emitted into Prefect's event stream: it is a check of one webhook, not an event of the
        # organization (no remediation can be on it).
        published_at=now,
    )
    delivery = Delivery(**_delivery_row(event, webhook.id))
    session.add(event)
    session.flush()
    session.add(delivery)
    session.flush()
    return delivery


def fail_open_deliveries(session: Session, webhook_id: str, reason: str) -> None:
    """Give up every open delivery of a webhook (it was disabled)."""
    session.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status.in_(OPEN_STATUSES))
        .values(status="failed", next_attempt_at=None, last_error=reason)
    )


def disable_webhook(session: Session, webhook_id: str, reason: str, detail: str, now: datetime) -> bool:
    """Turn an enabled webhook off, stop its pending retries, and emit ``webhook.disabled``.

    ``reason`` is the event's code (``gone``, ``no_service``, ``days_of_failures``...); ``detail`` is
    what the owner reads as the webhook's ``disabled_reason``. Returns whether this call disabled it
    (a webhook already off is left as it is and emits nothing).
    """
    disabled = session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.enabled.is_(True))
        .values(enabled=False, disabled_reason=detail)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not disabled:
        return False
    fail_open_deliveries(session, webhook_id, detail)
    webhook = session.get(Webhook, webhook_id)
    if webhook is not None:
        data = {
            "webhook_id": webhook.id,
            "name": webhook.name,
            "format": webhook.format,
            "url": webhook.url,
            "reason": reason,
            "detail": detail,
            "disabled_at": now.isoformat(),
        }
        record_event(session, webhook.organization_id, "webhook.disabled", data, webhook.project_id, now)
    return True


def record_exhausted(session: Session, delivery_id: str, last_error: str | None, now: datetime) -> None:
    """Emit ``delivery.exhausted`` for a delivery that spent its retry schedule.

    Not for a delivery of a ``delivery.exhausted`` event itself: two receivers that are both down
    would otherwise report each other's failures back and forth.
    """
    row = delivery_with_context(session, delivery_id)
    if row is None:
        return
    delivery, webhook, event = row
    if event.type == "delivery.exhausted":
        return
    data = {
        "webhook_id": webhook.id,
        "webhook_name": webhook.name,
        "delivery_id": delivery.id,
        "event_id": event.id,
        "event_type": event.type,
        "attempts": delivery.attempt_count,
        "last_error": (last_error or "")[:2000] or None,
    }
    record_event(session, webhook.organization_id, "delivery.exhausted", data, webhook.project_id, now)


def recoverable_delivery_ids(
    session: Session,
    webhook_id: str,
    since: datetime,
    until: datetime | None,
    limit: int,
    statuses: Sequence[str] = RECOVERABLE_STATUSES,
) -> list[str]:
    """Deliveries of the webhook created in ``[since, until)`` in one of ``statuses`` (default: those whose
    last attempt did not succeed), in order of creation."""
    query = select(Delivery.id).where(
        Delivery.webhook_id == webhook_id,
        Delivery.status.in_(statuses),
        Delivery.created_at >= since,
    )
    if until is not None:
        query = query.where(Delivery.created_at < until)
    return list(session.scalars(query.order_by(Delivery.created_at, Delivery.id).limit(limit)))


def claim_for_recovery(
    session: Session, delivery_id: str, lease_until: datetime, statuses: Sequence[str] = RECOVERABLE_STATUSES
) -> tuple[str, datetime | None] | None:
    """Lease a delivery in one of ``statuses`` (default: not succeeded) for one recovery attempt.

    Returns its status and due time before the claim (to put back what a failed attempt should not
    change), or ``None`` when it succeeded meanwhile or is gone.
    """
    before = session.execute(
        select(Delivery.status, Delivery.next_attempt_at).where(Delivery.id == delivery_id)
    ).first()
    if before is None or before[0] not in statuses:
        return None
    claimed = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == before[0],
            Delivery.next_attempt_at.is_(None) if before[1] is None else Delivery.next_attempt_at == before[1],
        )
        .values(status="retrying", next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    ).rowcount
    return (before[0], before[1]) if claimed else None


def failing_since(session: Session, webhook_id: str) -> datetime | None:
    """When the webhook's current unbroken run of failed attempts began (``None`` if none)."""
    last_success = session.scalar(
        select(func.max(DeliveryAttempt.attempted_at))
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(Delivery.webhook_id == webhook_id, DeliveryAttempt.succeeded.is_(True))
    )
    first_failure = select(func.min(DeliveryAttempt.attempted_at)).join(
        Delivery, Delivery.id == DeliveryAttempt.delivery_id
    ).where(Delivery.webhook_id == webhook_id, DeliveryAttempt.succeeded.is_(False))
    if last_success is not None:
        first_failure = first_failure.where(DeliveryAttempt.attempted_at > last_success)
    return session.scalar(first_failure)


def undispatched_event_ids(
    session: Session, limit: int, written_before: datetime | None = None
) -> list[str]:
    """Outbox events nobody has fanned out yet, oldest first (optionally only those written before)."""
    query = select(Event.id).where(Event.dispatched_at.is_(None))
    if written_before is not None:
        query = query.where(Event.timestamp <= written_before)
    return list(session.scalars(query.order_by(Event.id).limit(limit)))


def settled_delivery_ids_before(session: Session, created_before: datetime, limit: int) -> list[str]:
    """Up to ``limit`` settled deliveries made before ``created_before``, oldest first.

    Delivery ids sort by creation time, so the oldest are found on the primary key alone.
    """
    oldest = (
        select(Delivery.id)
        .where(Delivery.id < f"dlv_{id_floor(created_before)}", Delivery.status.not_in(OPEN_STATUSES))
        .order_by(Delivery.id)
        .limit(limit)
    )
    return list(session.scalars(oldest))


def prune_settled_deliveries(session: Session, created_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` settled deliveries made before ``created_before``, with their attempts."""
    ids = settled_delivery_ids_before(session, created_before, limit)
    if not ids:
        return 0
    # Attempts go first: their foreign key cascades, but not every SQLite connection enforces keys.
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
    session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
    return len(ids)


def get_delivery(session: Session, webhook_id: str, delivery_id: str) -> Delivery | None:
    """The delivery if it belongs to the webhook."""
    delivery = session.get(Delivery, delivery_id)
    return delivery if delivery is not None and delivery.webhook_id == webhook_id else None


def deliveries_query(
    webhook_id: str, status: str | None = None, event_type: str | None = None
) -> Select[tuple[Delivery]]:
    """The deliveries of a webhook, optionally of one status and event type (unordered)."""
    query = select(Delivery).where(Delivery.webhook_id == webhook_id)
    if status:
        query = query.where(Delivery.status == status)
    if event_type:
        query = query.where(Delivery.event_type == event_type)
    return query


def attempts_by_delivery(
    session: Session, delivery_ids: Iterable[str]
) -> dict[str, list[DeliveryAttempt]]:
    """Every attempt of the given deliveries, oldest first, keyed by delivery id."""
    ids = list(delivery_ids)
    grouped: dict[str, list[DeliveryAttempt]] = {delivery_id: [] for delivery_id in ids}
    if not ids:
        return grouped
    for attempt in session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(ids))
        .order_by(DeliveryAttempt.id)
    ):
        grouped[attempt.delivery_id].append(attempt)
    return grouped
