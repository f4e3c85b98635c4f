"""How deliveries are sent: the ``Sender``, each delivery's attempts, and their settlement.

``send_all`` takes the targets ``tasks.webhooks.fanout`` planned and sends them through one ``Sender``
(httpx clients per receiver origin, at most ``WebhookSettings.concurrency`` requests in flight; the
dispatcher shares one across all its fan-outs), every delivery on its own coroutine (so a slow or dead
receiver only holds its own slot), and attempts written to the database as they complete by one writer
that batches whatever finished together.

Database work runs in a thread (``asyncio.to_thread``) so the event loop keeps sending meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import SQLAlchemyError

from blocks.egress import GuardedTransport
from store import deliveries as store
from store.db import session_scope
from store.ids import id_seconds
from store.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_EVENT_TO_ATTEMPT
from store.models import utcnow
from tasks.webhooks.delivery import MASK, AttemptResult, Outcome, Target, retry_delay, send_attempt
from tasks.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)


@dataclass
class Settlement:
    """What an attempt changes on its delivery (columns not named here keep their value)."""

    changes: dict[str, Any] = field(default_factory=dict)
    exhausted: bool = False  # the delivery spent its retry schedule: emit delivery.exhausted


@dataclass
class SendSummary:
    """Counts for the Prefect run's log and return value."""

    deliveries: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0

    def add(self, results: Sequence[AttemptResult]) -> SendSummary:
        for result in results:
            self.deliveries += 1
            if result.outcome == "succeeded":
                self.succeeded += 1
            elif result.outcome == "retry":
                self.retrying += 1
            else:
                self.failed += 1
        return self

    def include(self, other: SendSummary) -> SendSummary:
        """Add another summary's counts to this one."""
        self.deliveries += other.deliveries
        self.succeeded += other.succeeded
        self.retrying += other.retrying
        self.failed += other.failed
        return self


@lru_cache
def _ssl_context() -> Any:
    # Loading the CA bundle takes tens of milliseconds; one context serves every client.
    return httpx.create_ssl_context()


@dataclass
class OriginPool:
    """The connections to one receiver origin (``transport``, through the egress guard), and its use."""

    transport: httpx.AsyncBaseTransport
    in_use: int = 0  # requests holding it now
    last_used: float = 0.0  # time.monotonic() when the last one ended
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True
        await self.transport.aclose()


class Sender:
    """Connection pools through the SSRF guard, one per receiver origin, under one bound on requests in flight.

    One pool per origin keeps every pool small: httpcore scans its whole pool (and polls each idle
    socket) for every request, so a single pool shared by a hundred receivers costs more CPU than the
    requests. Later deliveries to a receiver reuse its open connection. The dispatcher keeps one
    ``Sender`` for its whole life and closes pools left idle (``close_idle``); a one-off send (a retry
    sweep, a redelivery) opens its own and closes it at the end. A pool is an httpx transport with no
    client around it: nothing a receiver answers (a cookie, a redirect) is kept for the next request,
    which may be another organization's to the same origin.

    At most ``max_pools`` pools stay open (``WebhookSettings.max_idle_clients`` by default): once a
    send finishes with more than that, the least recently used pools nothing is sending through are
    closed at once. A fan-out to a thousand receivers would otherwise leave a thousand pools and their
    kept-alive connections open for a minute or two; receivers with steady traffic are the recently
    used ones and keep theirs.
    """

    def __init__(self, settings: WebhookSettings, max_pools: int | None = None) -> None:
        self.slots = asyncio.Semaphore(settings.concurrency)
        self._limits = httpx.Limits(
            max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
        )
        self.max_pools = settings.max_idle_clients if max_pools is None else max_pools
        self._pools: OrderedDict[str, OriginPool] = OrderedDict()  # least recently used first

    @property
    def open_origins(self) -> list[str]:
        """The origins with an open pool, least recently used first."""
        return list(self._pools)

    @asynccontextmanager
    async def pool_for(self, url: str) -> AsyncIterator[OriginPool]:
        """The pool of ``url``'s origin, once a slot is free; hold it for one request."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        try:
            async with self.slots:
                pool = self._pools.get(origin)
                if pool is None:
                    transport = GuardedTransport(limits=self._limits, verify=_ssl_context())
                    pool = self._pools[origin] = OriginPool(transport)
                else:
                    self._pools.move_to_end(origin)
                pool.in_use += 1
                try:
                    yield pool
                finally:
                    pool.in_use -= 1
                    pool.last_used = time.monotonic()
                    if self._pools.get(origin) is pool:
                        self._pools.move_to_end(origin)
        finally:
            if len(self._pools) > self.max_pools:
                await self._close_least_recently_used()

    async def _close_least_recently_used(self) -> None:
        """Close idle pools, least recently used first, until at most ``max_pools`` are open (pools a
        request is using stay, so more may remain while sends are in flight)."""
        excess = len(self._pools) - self.max_pools
        closing = []
        for origin, pool in self._pools.items():
            if len(closing) >= excess:
                break
            if not pool.in_use:
                closing.append(origin)
        # Out of the map before the first await: no request can pick up a pool being closed.
        pools = [self._pools.pop(origin) for origin in closing]
        for pool in pools:
            await pool.aclose()

    async def close_idle(self, idle_seconds: float) -> None:
        """Close the pools of origins nothing was sent to for ``idle_seconds``."""
        now = time.monotonic()
        for origin, pool in list(self._pools.items()):
            if not pool.in_use and now - pool.last_used >= idle_seconds:
                del self._pools[origin]
                await pool.aclose()

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pools, self._pools = self._pools, OrderedDict()
        for pool in pools.values():
            await pool.aclose()


async def send_all(
    targets: Sequence[Target],
    trigger: str,
    settings: WebhookSettings,
    database_url: str | None,
    manual: bool = False,
    sender: Sender | None = None,
) -> list[AttemptResult]:
    if not targets:
        return []
    if sender is None:
        async with Sender(settings) as own:
            return await send_all(targets, trigger, settings, database_url, manual, own)
    recorder = AttemptRecorder(settings, database_url)
    writer = asyncio.create_task(recorder.run())
    sending = asyncio.gather(
        *(_deliver(sender, target, trigger, settings, recorder, manual) for target in targets)
    )
    try:
        await asyncio.wait([sending, writer], return_when=asyncio.FIRST_COMPLETED)
        if writer.done():
            # The writer only ends early when our database fails it: stop sending what cannot be
            # recorded; the deliveries' leases run out and the sweep takes them over.
            sending.cancel()
            writer.result()
        results = await sending
    finally:
        if not sending.done():
            sending.cancel()
        await recorder.close()
        await writer
    return list(results)


async def _deliver(
    sender: Sender,
    target: Target,
    trigger: str,
    settings: WebhookSettings,
    recorder: AttemptRecorder,
    manual: bool,
) -> AttemptResult:
    while True:
        result = await _attempt(sender, target, trigger, settings)
        _count(result, target, first=target.attempts_made == 0 and not manual)
        target.attempts_made += 1
        if manual:
            recorder.put(result, _manual_settlement(result, target))
            return result
        delay = retry_delay(target.attempts_made, result.retry_after, settings.retry_schedule)
        settlement = _settlement(result, delay, settings)
        recorder.put(result, settlement)
        if _retry_inline(result, delay, settings):
            # A short wait is cheaper than a trip through the sweep; the lease set in the
            # settlement keeps the sweep away meanwhile and takes over if this process dies.
            await asyncio.sleep(delay)
            trigger = "retry"
            continue
        return result


async def _attempt(sender: Sender, target: Target, trigger: str, settings: WebhookSettings) -> AttemptResult:
    """One attempt; an error nobody planned for is a failed attempt of this delivery only."""
    if not target.secrets:
        return _missing_secrets(target, trigger)
    try:
        async with sender.pool_for(target.url) as pool:
            return await send_attempt(pool.transport, target, trigger, settings.timeout_seconds, settings.user_agent)
    except SQLAlchemyError:
        raise  # our own database is down: the run fails, and the lease and the sweep take over
    except Exception as error:  # noqa: BLE001 - one delivery's surprise must not end the others
        # No traceback: its message could quote a header value, and those are secrets.
        message = _without_secrets(f"{type(error).__name__}: {error}", target)[:1000]
        where = traceback.extract_tb(error.__traceback__)[-1]
        log.error(
            "delivery %s: unexpected error in an attempt (%s, at %s:%s)",
            target.delivery_id, message, where.filename, where.lineno,
        )
        return _unsent(target, trigger, "retry", f"unexpected error: {message}")


def _count(result: AttemptResult, target: Target, first: bool) -> None:
    """The attempt in the Prometheus metrics (``store.metrics``); a delivery's first attempt also times
    its event's way from acceptance (the event id's time) to here."""
    WEBHOOK_ATTEMPTS.labels(target.organization_id, _metric_outcome(result)).inc()
    if first:
        WEBHOOK_EVENT_TO_ATTEMPT.observe(max(0.0, result.attempted_at.timestamp() - id_seconds(target.message_id)))


def _metric_outcome(result: AttemptResult) -> str:
    if result.outcome == "succeeded":
        return "delivered"
    if result.refused:
        return "refused"
    if result.timed_out and result.response_status is None:
        return "timeout"
    return "gone" if result.outcome == "gone" else "failed"


def _without_secrets(text: str, target: Target) -> str:
    for secret in [*target.secrets, *target.headers.values(), *target.hidden]:
        if secret:
            text = text.replace(secret, MASK)
    return text


def _retry_inline(result: AttemptResult, delay: float | None, settings: WebhookSettings) -> bool:
    # A receiver that timed out has held this unit for the whole timeout already; its retry goes
    # to the sweep so the rest of the event's unit of work can finish.
    return (
        result.outcome == "retry"
        and not result.timed_out
        and delay is not None
        and delay <= settings.inline_retry_seconds
    )


def _missing_secrets(target: Target, trigger: str) -> AttemptResult:
    missing = "the webhook's signing secret is missing (its secrets block was not found)"
    return _unsent(target, trigger, "failed", missing)


def _unsent(target: Target, trigger: str, outcome: Outcome, error: str) -> AttemptResult:
    """An attempt that ended before a request went out."""
    return AttemptResult(
        delivery_id=target.delivery_id,
        webhook_id=target.webhook_id,
        trigger=trigger,
        attempted_at=utcnow(),
        request_headers={},
        duration_ms=0.0,
        outcome=outcome,
        error=error,
    )


def _settlement(result: AttemptResult, delay: float | None, settings: WebhookSettings) -> Settlement:
    if result.outcome == "succeeded":
        return Settlement({"status": "succeeded", "next_attempt_at": None, "last_error": None})
    if result.outcome == "retry" and delay is not None:
        due = result.attempted_at + timedelta(seconds=delay)
        if _retry_inline(result, delay, settings):
            # The lease of the inline retry.
            due += timedelta(seconds=settings.timeout_seconds + settings.lease_margin_seconds)
        return Settlement({"status": "retrying", "next_attempt_at": due, "last_error": result.error})
    exhausted = result.outcome == "retry"  # it would be retried, but the schedule is spent
    return Settlement({"status": "failed", "next_attempt_at": None, "last_error": result.error}, exhausted)


def _manual_settlement(result: AttemptResult, target: Target) -> Settlement:
    if result.outcome == "succeeded":
        return Settlement({"status": "succeeded", "next_attempt_at": None, "last_error": None})
    if target.scheduled and target.scheduled_at is not None:  # a recovery claim moved it: put it back
        return Settlement({"status": "retrying", "next_attempt_at": target.scheduled_at, "last_error": result.error})
    if target.scheduled:
        return Settlement({"last_error": result.error})  # the scheduled retry stays
    return Settlement({"status": "failed", "next_attempt_at": None, "last_error": result.error})


class AttemptRecorder:
    """Writes attempts as they complete; whatever completed together is one transaction."""

    def __init__(self, settings: WebhookSettings, database_url: str | None) -> None:
        self._settings = settings
        self._database_url = database_url
        self._queue: asyncio.Queue[tuple[AttemptResult, Settlement] | None] = asyncio.Queue()

    def put(self, result: AttemptResult, settlement: Settlement) -> None:
        self._queue.put_nowait((result, settlement))

    async def close(self) -> None:
        await self._queue.put(None)

    async def run(self) -> None:
        done = False
        while not done:
            batch = []
            item = await self._queue.get()
            while item is not None:
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            done = item is None
            if batch:
                await asyncio.to_thread(record_attempts, batch, self._settings, self._database_url)


def record_attempts(
    batch: Sequence[tuple[AttemptResult, Settlement]],
    settings: WebhookSettings,
    database_url: str | None = None,
) -> None:
    """Store attempts and their deliveries' new state; disable webhooks that are gone or dead.

    In the same transaction, through the outbox: ``delivery.exhausted`` for each delivery that spent
    its schedule, ``webhook.disabled`` for each webhook this batch disabled.
    """
    now = utcnow()
    failing_webhooks = set()
    with session_scope(database_url) as session:
        # One INSERT for the batch's attempts, one UPDATE per kind of settlement: a statement per attempt
        # was a quarter of the dispatcher's CPU at 20 events/s x 5 webhooks.
        store.add_attempts(session, [(result.delivery_id, result.record_fields()) for result, _ in batch])
        store.settle_deliveries(session, [(result.delivery_id, settlement.changes) for result, settlement in batch])
        for result, settlement in batch:
            if settlement.exhausted:
                store.record_exhausted(session, result.delivery_id, result.error, now)
            if result.outcome == "gone":
                store.disable_webhook(
                    session,
                    result.webhook_id,
                    result.disable_reason or "gone",
                    result.disable_detail or "the receiver answered 410 Gone",
                    now,
                )
            elif result.outcome != "succeeded":
                failing_webhooks.add(result.webhook_id)
        limit = timedelta(days=settings.disable_after_days)
        for webhook_id in failing_webhooks:
            since = store.failing_since(session, webhook_id)
            if since is not None and now - since >= limit:
                store.disable_webhook(
                    session,
                    webhook_id,
                    "days_of_failures",
                    f"only failed deliveries for {settings.disable_after_days:g} days",
                    now,
                )
