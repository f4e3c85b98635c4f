"""One delivery attempt: sign, POST, classify the outcome, and decide what happens next.

Nothing here touches the database; ``tasks.webhooks.fanout`` records what ``send_attempt`` returns.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from tasks.webhooks.signing import signature_header
from tasks.webhooks.ssrf import TargetRefused

MASK = "********"
BODY_KEEP_BYTES = 1024
# Our headers win over a webhook's custom headers of the same name.
PROTECTED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent"}
)
RETRYABLE_STATUSES = frozenset({408, 425, 429})

Outcome = Literal["succeeded", "retry", "failed", "gone"]


@dataclass
class Target:
    """Everything needed to send one delivery; ``secrets`` and ``headers`` are never stored."""

    delivery_id: str
    webhook_id: str
    url: str
    message_id: str  # the event id: `webhook-id`, constant across retries and redeliveries
    body: bytes
    secrets: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    attempts_made: int = 0
    scheduled: bool = False  # a retry is already scheduled (a manual attempt leaves it be)
    secrets_version: datetime | None = None  # the webhook row's updated_at: secrets are cached per version


@dataclass
class AttemptResult:
    """What one attempt did, in the shape the history shows (secrets already masked)."""

    delivery_id: str
    webhook_id: str
    trigger: str
    attempted_at: datetime
    request_headers: dict[str, str]
    duration_ms: float
    outcome: Outcome
    response_status: int | None = None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None
    timed_out: bool = False

    def record_fields(self) -> dict[str, Any]:
        """The columns of the attempt row."""
        return {
            "attempted_at": self.attempted_at,
            "trigger": self.trigger,
            "request_headers": self.request_headers,
            "response_status": self.response_status,
            "response_body": self.response_body,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "succeeded": self.outcome == "succeeded",
        }


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build_headers(target: Target, timestamp: int, user_agent: str) -> dict[str, str]:
    """Custom headers first, then ours, which a custom header of the same name cannot replace."""
    headers = {
        name: value
        for name, value in target.headers.items()
        if name.lower() not in PROTECTED_HEADERS
    }
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": user_agent,
            "webhook-id": target.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                target.secrets, target.message_id, timestamp, target.body
            ),
        }
    )
    return headers


def masked(headers: dict[str, str]) -> dict[str, str]:
    """The headers as the history shows them: custom header values hidden."""
    return {
        name.lower(): value if name.lower() in PROTECTED_HEADERS else MASK
        for name, value in headers.items()
    }


async def send_attempt(
    client: httpx.AsyncClient, target: Target, trigger: str, timeout: float, user_agent: str
) -> AttemptResult:
    """POST the signed payload once and classify the answer. Never raises for network trouble.

    Example:
        ```python
        result = await send_attempt(client, target, "initial", timeout=15, user_agent="ModelPulse")
        result.outcome  # "succeeded" | "retry" | "failed" | "gone"
        ```
    """
    attempted_at = datetime.now(UTC)
    headers = build_headers(target, int(attempted_at.timestamp()), user_agent)
    result = AttemptResult(
        delivery_id=target.delivery_id,
        webhook_id=target.webhook_id,
        trigger=trigger,
        attempted_at=attempted_at,
        request_headers=masked(headers),
        duration_ms=0.0,
        outcome="retry",
    )
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", target.url, content=target.body, headers=headers, timeout=timeout
        ) as response:
            result.response_status = response.status_code
            result.response_body = await _first_kib(response)
            result.retry_after = retry_after_seconds(response.headers.get("retry-after"))
    except httpx.TimeoutException as exc:
        result.error = f"timeout after {timeout:g} s ({type(exc).__name__})"
        result.timed_out = True
    except httpx.TransportError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc.__cause__, TargetRefused):
            result.outcome = "failed"
    result.duration_ms = (time.perf_counter() - started) * 1000
    if result.response_status is not None:
        result.outcome = classify_status(result.response_status)
        if result.outcome != "succeeded":
            result.error = f"HTTP {result.response_status}"
    return result


async def _first_kib(response: httpx.Response) -> str:
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= BODY_KEEP_BYTES:
            break
    return bytes(kept[:BODY_KEEP_BYTES]).decode("utf-8", errors="replace")


def classify_status(status: int) -> Outcome:
    """2xx succeeds; 410 means the receiver is gone; 408/425/429/5xx retry; anything else fails."""
    if 200 <= status < 300:
        return "succeeded"
    if status == 410:
        return "gone"
    if status in RETRYABLE_STATUSES or status >= 500:
        return "retry"
    return "failed"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (it may be seconds or an HTTP date); ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_delay(attempts_made: int, retry_after: float | None, schedule: list[float]) -> float | None:
    """Seconds until the next retry after ``attempts_made`` attempts, or ``None`` when exhausted.

    ``Retry-After`` can push a retry later than the schedule says (never earlier), but no further
    than the schedule's longest step, so a receiver cannot park a delivery forever.
    """
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1]
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def next_due(now: datetime, delay: float) -> datetime:
    return now + timedelta(seconds=delay)
