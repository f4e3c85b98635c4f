"""Requests per minute per API key, counted across every API process on every machine.

The shared count is a database row per key and fixed one-minute window (``store/rate_limits.py``).
Each process counts its own requests and adds them to that row in batches, reading back the total:

- a batch is flushed when it holds ``batch`` requests (the limit / 100, between 1 and 50) or when
  ``FLUSH_SECONDS`` passed since the last flush, so a busy key costs one upsert per ``batch``
  requests, not one per request;
- a request is refused at once, without a database round trip, when the last total read plus this
  process's unflushed requests reaches the limit (totals only grow within a window, so that refusal
  is never wrong); a flush that returns a total above the limit refuses the request that made it.

Over-admission bound: each process admits at most ``batch - 1`` requests of a key that the shared
total does not show yet, so a window admits at most ``limit + processes x (batch - 1)`` requests
(exactly ``limit`` when the limit is below 200, since every request is then counted before it is
admitted). If the database cannot be written the limiter lets requests through (and logs it):
a counter must not take the API down.

The same machinery (same table, same batches) counts refused API keys per client address
(``MODELPULSE_AUTH_FAILURES_PER_MINUTE``, default 30): the counter of an address is
``addr_`` + a hash of it (the address itself is not stored), one upsert per refused key. Before a
presented key is looked up, ``refuse_failing_client`` asks this process's knowledge of the address's
count (``RateLimiter.peek``: no database round trip) and answers 429 past the limit, so a client that
sprays keys costs nothing more until its minute ends. Each process learns the shared total when it
counts a failure, so a window looks up at most the limit plus, per API process, the requests it had in
flight when it learnt (one, for a client that waits for each answer; at most its threads). The
address is ``request.remote_addr``, the TCP peer: behind a load balancer or proxy, set
``MODELPULSE_TRUSTED_PROXIES`` (``api/__init__.py``) or every client shares the proxy's count.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from api.errors import TooManyAuthenticationFailures, TooManyRequests
from store.db import session_scope
from store.rate_limits import WINDOW_SECONDS, add_key_requests, prune_key_request_counts, window_start

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_BATCH = 50


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request, and what the ``RateLimit-*`` headers tell the client."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends and the count starts again

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class _KeyWindow:
    """One key's count in the current window, as this process knows it."""

    __slots__ = ("lock", "window", "shared", "pending", "flushed_at")

    def __init__(self, window: int):
        self.lock = threading.Lock()
        self.window = window
        self.shared = 0  # the shared total read back at the last flush (includes this process's flushed ones)
        self.pending = 0  # admitted here, not yet added to the shared total
        self.flushed_at = 0.0


class RateLimiter:
    """At most ``limit`` requests per key per minute (plus the documented over-admission), shared
    through the database at ``database_url``.

    Example:
        ```python
        limiter = RateLimiter(6000, "sqlite:////tmp/modelpulse.db")
        if not limiter.admit("key_01j...").allowed:
            ...  # answer 429
        ```
    """

    def __init__(self, limit: int, database_url: str, flush_seconds: float = FLUSH_SECONDS):
        if limit < 1:
            raise ValueError("a rate limit is at least 1 request a minute")
        self.limit = limit
        self.database_url = database_url
        self.flush_seconds = flush_seconds
        self.batch = max(1, min(MAX_BATCH, limit // 100))
        self._windows: dict[str, _KeyWindow] = {}
        self._lock = threading.Lock()
        self._pruned_window = 0

    def admit(self, key_id: str, now: float | None = None) -> Decision:
        """Count one request of ``key_id`` at ``now`` (unix seconds; default the clock) and decide."""
        now = time.time() if now is None else now
        window = window_start(now)
        self._start_window(window)
        state = self._window_of(key_id, window)
        with state.lock:
            if state.window != window:  # the key's first request of a new minute in this process
                state.window, state.shared, state.pending, state.flushed_at = window, 0, 0, 0.0
            allowed = state.shared + state.pending < self.limit
            if allowed:
                state.pending += 1
                if state.pending >= self.batch or now - state.flushed_at >= self.flush_seconds:
                    allowed = self._flush(key_id, state, now) <= self.limit
            seen = state.shared + state.pending
        return Decision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - seen),
            reset_seconds=max(1, math.ceil(window + WINDOW_SECONDS - now)),
        )

    def peek(self, key_id: str, now: float | None = None) -> Decision:
        """What ``admit`` would decide for ``key_id`` from this process's knowledge, counting nothing
        and without a database round trip."""
        now = time.time() if now is None else now
        window = window_start(now)
        seen = 0
        state = self._windows.get(key_id)
        if state is not None:
            with state.lock:
                if state.window == window:
                    seen = state.shared + state.pending
        return Decision(
            allowed=seen < self.limit,
            limit=self.limit,
            remaining=max(0, self.limit - seen),
            reset_seconds=max(1, math.ceil(window + WINDOW_SECONDS - now)),
        )

    def _window_of(self, key_id: str, window: int) -> _KeyWindow:
        state = self._windows.get(key_id)
        if state is None:
            with self._lock:
                state = self._windows.setdefault(key_id, _KeyWindow(window))
        return state

    def _flush(self, key_id: str, state: _KeyWindow, now: float) -> int:
        """Add the pending requests to the shared total and return it (the local estimate if the
        database cannot be written; the pending requests are then tried again at the next flush)."""
        try:
            with session_scope(self.database_url) as session:
                total = add_key_requests(session, key_id, state.window, state.pending)
        except SQLAlchemyError:
            log.warning("could not count requests of key %s; letting them through", key_id, exc_info=True)
            state.flushed_at = now
            return state.shared + state.pending
        state.shared, state.pending, state.flushed_at = total, 0, now
        return total

    def _start_window(self, window: int) -> None:
        """Once per new window in this process: forget other keys' past windows, delete old counts."""
        if window <= self._pruned_window:
            return
        with self._lock:
            if window <= self._pruned_window:
                return
            self._pruned_window = window
            self._windows = {key: state for key, state in self._windows.items() if state.window >= window}
        try:
            with session_scope(self.database_url) as session:
                prune_key_request_counts(session, before_window=window - WINDOW_SECONDS)
        except SQLAlchemyError:
            log.warning("could not prune old request counts", exc_info=True)


def enforce_rate_limit(key_id: str) -> None:
    """Count this request against its key; raises ``TooManyRequests`` past the limit."""
    limiter: RateLimiter | None = current_app.extensions.get("rate_limiter")
    if limiter is None:
        return
    decision = limiter.admit(key_id)
    g.rate_limit = decision
    if not decision.allowed:
        raise TooManyRequests(
            f"This API key is limited to {limiter.limit} requests a minute; "
            f"try again in {decision.reset_seconds} s.",
            headers=decision.headers(),
        )


def _client_counter() -> str:
    """The counter of the request's client address (``remote_addr``; ``unknown`` when the server has none)."""
    address = request.remote_addr or "unknown"
    return "addr_" + hashlib.sha256(address.encode()).hexdigest()[:32]


def refuse_failing_client() -> None:
    """Raise ``TooManyAuthenticationFailures`` when the client address used up its refused keys this
    minute; called before a presented key is looked up."""
    limiter: RateLimiter | None = current_app.extensions.get("auth_failure_limiter")
    if limiter is None:
        return
    decision = limiter.peek(_client_counter())
    if not decision.allowed:
        raise TooManyAuthenticationFailures(
            f"More than {limiter.limit} invalid API keys a minute came from this address; "
            f"no key is checked from it for {decision.reset_seconds} s.",
            headers={"Retry-After": str(decision.reset_seconds)},
        )


def count_authentication_failure() -> None:
    """Count one refused key (unknown, revoked or expired) against the request's client address."""
    limiter: RateLimiter | None = current_app.extensions.get("auth_failure_limiter")
    if limiter is not None:
        limiter.admit(_client_counter())


def _add_headers(response: Response) -> Response:
    decision: Decision | None = g.get("rate_limit")
    if decision is not None:
        response.headers.update(decision.headers())
    return response


def init_app(app: Flask) -> None:
    """One limiter per application (that is, per API process) for keys' requests, one for addresses'
    refused keys; each off when its limit (``RATE_LIMIT_PER_MINUTE``, ``AUTH_FAILURES_PER_MINUTE``) is 0."""
    limit = app.config["RATE_LIMIT_PER_MINUTE"]
    app.extensions["rate_limiter"] = RateLimiter(limit, app.config["DATABASE_URL"]) if limit > 0 else None
    failures = app.config["AUTH_FAILURES_PER_MINUTE"]
    app.extensions["auth_failure_limiter"] = (
        RateLimiter(failures, app.config["DATABASE_URL"]) if failures > 0 else None
    )
    app.after_request(_add_headers)
