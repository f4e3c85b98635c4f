"""What to send: an event's first attempts, due retries, redeliveries, recoveries and test events.

Each entry point plans its deliveries in the database (claims events, creates deliveries, leases
them), adds the webhooks' secrets and rendered bodies, and hands the targets to
``tasks.webhooks.sender.send_all``, which sends them and records the attempts.

Database work runs in a thread (``asyncio.to_thread``) so the event loop keeps sending meanwhile.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from blocks.webhook import WebhookSecrets
from store import deliveries as store
from store.db import read_scope, session_scope
from store.event_catalog import about_webhook
from store.events import event_payload
from store.models import Delivery, Event, Webhook, utcnow
from store.settings import get_settings
from tasks.webhooks import filters, silences, throttle
from tasks.webhooks.delivery import AttemptResult, Target, encode_payload
from tasks.webhooks.formats import SECRET_URL_FORMATS, Destination, get_format
from tasks.webhooks.secrets import load_webhook_secrets
from tasks.webhooks.sender import Sender, SendSummary, send_all
from tasks.webhooks.settings import WebhookSettings, get_webhook_settings


async def fan_out_events(
    event_ids: Sequence[str], sender: Sender | None = None, database_url: str | None = None
) -> SendSummary:
    """Create and send the deliveries of outbox events; events another run already took are skipped.

    Example:
        ```python
        summary = await fan_out_events(["evt_01jdx3k8v5c8m2y7q4n6t9w0ab"])
        summary.succeeded
        ```
    """
    return await send_planned(await plan_fan_out(event_ids, database_url), sender, database_url)


Planned = list[tuple[Target, list[str]]]


async def plan_fan_out(event_ids: Sequence[str], database_url: str | None = None) -> Planned:
    """Claim outbox events and create their deliveries, leased to the caller, in one transaction; what to
    send (no secrets yet). Events another caller claimed first plan nothing."""
    return await asyncio.to_thread(_plan_fan_out, list(event_ids), get_webhook_settings(), database_url)


async def send_planned(planned: Planned, sender: Sender | None = None, database_url: str | None = None) -> SendSummary:
    """Send what ``plan_fan_out`` planned (secrets loaded now), recording every attempt."""
    if not planned:
        return SendSummary()
    targets = await _with_secrets(planned)
    return SendSummary().add(await send_all(targets, "initial", get_webhook_settings(), database_url, sender=sender))


def _plan_fan_out(event_ids: list[str], settings: WebhookSettings, database_url: str | None) -> Planned:
    # Claiming the events and creating their deliveries is one transaction: an event is either
    # still undispatched or has every delivery it needs, leased to this run.
    now = utcnow()
    with session_scope(database_url) as session:
        accepted = []
        subscribers: dict[tuple[str, str | None, str, str | None], tuple[list[Webhook], str | None]] = {}
        for event in store.claim_events(session, event_ids, now):
            # A webhook whose filter the event does not match gets no delivery; the filters come
            # with the rows (compiled once per webhook version), so this adds no query.
            payload = event_payload(event)
            # Events of one organization, project and type share their subscribers: one query each.
            key = (event.organization_id, event.project_id, event.type, about_webhook(event.type, event.data))
            if key not in subscribers:
                subscribers[key] = store.subscribed_webhooks(session, event)
            subscribed, silence_set = subscribers[key]
            webhooks = filters.accepting(subscribed, payload)
            # An event a silence matches is recorded `silenced` for each of them and sent to none
            # (the silences are loaded once per silence set version, with the rows).
            silence_id = silences.silencing(session, event, payload, silence_set) if webhooks else None
            if silence_id is not None:
                store.create_silenced_deliveries(session, event, [webhook.id for webhook in webhooks], silence_id)
                continue
            accepted.append((event, payload, webhooks))
        # A throttled webhook sends the first event of a type and group and holds back its repeats
        # within the cooldown (a claim in the database, in event order). The batch's throttled webhooks
        # are locked first, all at once and in the order every dispatcher uses: two batches claiming
        # overlapping groups in different orders would otherwise deadlock on PostgreSQL.
        throttle.hold(session, (webhook for _, _, webhooks in accepted for webhook in webhooks))
        claimed = [
            (event, payload, throttle.decide(session, event, payload, webhooks, now))
            for event, payload, webhooks in accepted
        ]
        lease = _lease_until(now, sum(len(decision.sending) for _, _, decision in claimed), settings)
        planned, rows = [], []
        for event, payload, decision in claimed:
            event_rows, delivery_ids = store.delivery_rows(
                event, decision.sending, lease, ids=decision.ids, suppressed=decision.suppressed
            )
            rows += event_rows
            body = encode_payload(payload)
            planned += [
                (_target(delivery_id, 0, webhook, payload, body), webhook.header_names)
                for delivery_id, webhook in zip(delivery_ids, decision.sending, strict=True)
            ]
        store.insert_deliveries(session, rows)  # the batch's deliveries in one statement
        return planned


def undispatched_event_ids(limit: int, database_url: str | None = None) -> list[str]:
    """The oldest outbox events nobody has fanned out yet (what the dispatcher polls for)."""
    with read_scope(database_url) as session:
        return store.undispatched_event_ids(session, limit)


async def retry_due_deliveries(
    now: datetime | None = None, limit: int = 1000, database_url: str | None = None
) -> SendSummary:
    """Lease and send every open delivery whose next attempt is due at ``now`` (default: now),
    ``limit`` at a time, until none is left.

    Every one is taken by this sweep, however many a dead dispatcher left behind: none waits for the
    next. Those sent get a lease or a retry time after ``now``, so each pass takes new ones. A
    delivery whose webhook was disabled meanwhile is failed instead of sent.
    """
    settings = get_webhook_settings()
    due_by = now or utcnow()
    summary = SendSummary()
    while True:
        planned, found = await asyncio.to_thread(_plan_retries, due_by, limit, settings, database_url)
        targets = await _with_secrets(planned)
        summary.add(await send_all(targets, "retry", settings, database_url))
        if found < limit:
            return summary


def _plan_retries(
    due_by: datetime, limit: int, settings: WebhookSettings, database_url: str | None
) -> tuple[list[tuple[Target, list[str]]], int]:
    """Lease up to ``limit`` deliveries due by ``due_by``; what to send, and how many were due."""
    with session_scope(database_url) as session:
        due = store.due_delivery_ids(session, due_by, limit)
        # From now, not from when the sweep began: a later pass's lease must not start out expired.
        lease = _lease_until(max(due_by, utcnow()), len(due), settings)
        planned = []
        for delivery_id in due:
            if not store.claim_delivery(session, delivery_id, due_by, lease):
                continue
            delivery, webhook, event = store.delivery_with_context(session, delivery_id)
            if not webhook.enabled:
                store.fail_open_deliveries(session, webhook.id, "the webhook is disabled")
                continue
            planned.append(_planned(delivery, webhook, event))
        return planned, len(due)


def stranded_event_ids(limit: int = 1000, database_url: str | None = None) -> list[str]:
    """Outbox events still undispatched long after they were written (no dispatcher was running)."""
    older_than = get_webhook_settings().stranded_before(utcnow())
    with session_scope(database_url) as session:
        return store.undispatched_event_ids(session, limit, written_before=older_than)


async def redeliver(
    delivery_id: str, trigger: str = "redeliver", database_url: str | None = None
) -> AttemptResult:
    """Send one more attempt of a delivery now (same ``webhook-id``) and record it.

    Success settles the delivery as ``succeeded``; a failure leaves a scheduled retry in place and
    otherwise marks it ``failed``. Disabled webhooks are sent to as well: this is how an operator
    checks that a receiver is back.
    """
    settings = get_webhook_settings()
    planned = await asyncio.to_thread(_plan_redelivery, delivery_id, database_url)
    targets = await _with_secrets([planned])
    (result,) = await send_all(targets, trigger, settings, database_url, manual=True)
    return result


def _plan_redelivery(delivery_id: str, database_url: str | None) -> tuple[Target, list[str]]:
    with session_scope(database_url) as session:
        delivery, webhook, event = store.delivery_with_context(session, delivery_id)
        target, header_names = _planned(delivery, webhook, event)
        target.scheduled = delivery.status == "retrying" and delivery.next_attempt_at is not None
        return target, header_names


@dataclass
class RecoverySummary:
    """What a recovery did; ``stopped`` says why it ended before the last delivery, if it did."""

    deliveries: int = 0  # selected: created in the window and not succeeded
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # succeeded (or went away) before their turn
    stopped: str | None = None


# How many deliveries one recovery takes at most (the oldest first); another recover takes the rest.
RECOVER_LIMIT = 100_000
# A receiver asking to slow down (429 + a short Retry-After) gets this many waits per delivery.
RECOVER_WAITS = 3


def recoverable_count(
    webhook_id: str,
    since: datetime,
    until: datetime | None,
    database_url: str | None = None,
    statuses: Sequence[str] = store.RECOVERABLE_STATUSES,
) -> int:
    """How many deliveries a recovery of this window (and ``statuses``) would send now."""
    with session_scope(database_url) as session:
        return len(store.recoverable_delivery_ids(session, webhook_id, since, until, RECOVER_LIMIT, statuses))


async def recover_deliveries(
    webhook_id: str,
    since: datetime,
    until: datetime | None = None,
    database_url: str | None = None,
    statuses: Sequence[str] = store.RECOVERABLE_STATUSES,
) -> RecoverySummary:
    """Send again every delivery of the webhook created in ``[since, until)`` whose last attempt did
    not succeed (retrying or failed; ``statuses`` may name others, ``silenced``), one at a time, in
    order of creation.

    One at a time, so the receiver gets them in the order they happened (a channel reads a breach
    before its resolution) and is not flooded as it comes back. Each delivery is leased just before
    its attempt, which is recorded in its history (trigger ``recover``) and settled like a
    redelivery: success settles it; a failure puts back the retry it had scheduled, else leaves it
    failed. The recovery stops at the first attempt the receiver could not take (a retryable
    failure, after waiting out a short ``Retry-After``): it is still down, and what remains stays as
    it was for the next recover. A delivery the receiver rejects (a 4xx) does not stop it.

    Example:
        ```python
        summary = await recover_deliveries("wh_01jdx3k8v5c8m2y7q4n6t9w0ab", since=outage_began)
        summary.succeeded
        ```
    """
    unknown = set(statuses) - set(store.RECOVER_STATUS_CHOICES)
    if unknown:  # a succeeded or suppressed delivery is never sent again by a recovery
        raise ValueError(f"recover takes statuses {', '.join(store.RECOVER_STATUS_CHOICES)}; not {sorted(unknown)}")
    settings = get_webhook_settings()
    ids = await asyncio.to_thread(_recoverable_ids, webhook_id, since, until, database_url, statuses)
    summary = RecoverySummary(deliveries=len(ids))
    async with Sender(settings) as sender:
        for delivery_id in ids:
            planned = await asyncio.to_thread(_claim_for_recovery, delivery_id, settings, database_url, statuses)
            if planned == "disabled":
                summary.stopped = "the webhook was disabled"
                break
            if planned is None:
                summary.skipped += 1
                continue
            [target] = await _with_secrets([planned])
            result = await _recover_one(sender, target, settings, database_url)
            summary.sent += 1
            if result.outcome == "succeeded":
                summary.succeeded += 1
                continue
            summary.failed += 1
            if result.outcome in ("retry", "gone"):
                summary.stopped = f"the receiver did not take delivery {delivery_id}: {result.error}"
                break
    return summary


def _recoverable_ids(
    webhook_id: str, since: datetime, until: datetime | None, database_url: str | None, statuses: Sequence[str]
) -> list[str]:
    with session_scope(database_url) as session:
        return store.recoverable_delivery_ids(session, webhook_id, since, until, RECOVER_LIMIT, statuses)


def _claim_for_recovery(
    delivery_id: str, settings: WebhookSettings, database_url: str | None, statuses: Sequence[str]
) -> tuple[Target, list[str]] | str | None:
    now = utcnow()
    with session_scope(database_url) as session:
        row = store.delivery_with_context(session, delivery_id)
        if row is None:
            return None
        delivery, webhook, event = row
        if not webhook.enabled:
            return "disabled"
        previous = store.claim_for_recovery(session, delivery_id, _lease_until(now, 1, settings), statuses)
        if previous is None:
            return None
        target, header_names = _planned(delivery, webhook, event)
        status, due = previous
        target.scheduled = status == "retrying" and due is not None
        target.scheduled_at = due if target.scheduled else None
        return target, header_names


async def _recover_one(
    sender: Sender, target: Target, settings: WebhookSettings, database_url: str | None
) -> AttemptResult:
    """One recovery attempt, recorded; a 429 with a short ``Retry-After`` is waited out and tried again."""
    for _ in range(RECOVER_WAITS):
        (result,) = await send_all([target], "recover", settings, database_url, manual=True, sender=sender)
        wait = result.retry_after
        if result.outcome != "retry" or wait is None or wait > settings.inline_retry_seconds:
            return result
        await asyncio.sleep(wait)
    return result


async def send_test_event(webhook_id: str, database_url: str | None = None) -> str:
    """Send a ``webhook.test`` event to one webhook now; return the id of its delivery."""
    delivery_id = await asyncio.to_thread(_create_test_delivery, webhook_id, database_url)
    await redeliver(delivery_id, trigger="test", database_url=database_url)
    return delivery_id


def _create_test_delivery(webhook_id: str, database_url: str | None) -> str:
    with session_scope(database_url) as session:
        webhook = session.get(Webhook, webhook_id)
        return store.create_test_delivery(session, webhook, utcnow()).id


def _planned(delivery: Delivery, webhook: Webhook, event: Event) -> tuple[Target, list[str]]:
    payload = event_payload(event)
    target = _target(delivery.id, delivery.attempt_count, webhook, payload, encode_payload(payload))
    return target, webhook.header_names


def _target(
    delivery_id: str, attempts_made: int, webhook: Webhook, payload: dict[str, Any], body: bytes
) -> Target:
    # The standard body is the payload as is; the other formats render once the secrets are loaded.
    return Target(
        delivery_id=delivery_id,
        webhook_id=webhook.id,
        url=webhook.url,
        message_id=payload["id"],
        body=body if webhook.format == "standard" else b"",
        secrets=[],
        attempts_made=attempts_made,
        secrets_version=webhook.updated_at,
        format=webhook.format,
        event=payload,
        webhook_name=webhook.name,
        config=dict(webhook.config or {}),
        organization_id=webhook.organization_id,
    )


def _lease_until(now: datetime, count: int, settings: WebhookSettings) -> datetime:
    # Long enough for every delivery of the batch to time out in turn, plus an inline retry;
    # a crashed sender's deliveries become due again once it passes.
    rounds = max(1, math.ceil(count / settings.concurrency))
    seconds = rounds * settings.timeout_seconds + settings.inline_retry_seconds + settings.lease_margin_seconds
    return now + timedelta(seconds=seconds)


async def _with_secrets(planned: Sequence[tuple[Target, list[str]]]) -> list[Target]:
    secrets = await load_webhook_secrets({target.webhook_id: target.secrets_version for target, _ in planned})
    now = utcnow()
    public_url = get_settings().public_url
    targets = []
    for target, header_names in planned:
        block: WebhookSecrets | None = secrets.get(target.webhook_id)
        if block is not None:
            target.secrets = block.active_signing_secrets(now)
            values = block.header_values()
            target.headers = {name: values[name] for name in header_names if name in values}
            _render(target, block, public_url)
        targets.append(target)
    return targets


def _render(target: Target, block: WebhookSecrets, public_url: str | None) -> None:
    """Put the secrets a format needs in place (the real URL, the routing key) and render its body."""
    if target.format in SECRET_URL_FORMATS and block.secret_url():
        target.url = block.secret_url() or target.url
        target.hidden.append(target.url)
    if target.format == "standard" or target.event is None:
        return
    if block.routing_key_value():
        target.hidden.append(block.routing_key_value() or "")
    destination = Destination(
        webhook_id=target.webhook_id,
        name=target.webhook_name,
        config=target.config,
        routing_key=block.routing_key_value(),
        public_url=public_url,
    )
    target.body = get_format(target.format).render(target.event, destination).body
