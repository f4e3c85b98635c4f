"""What every format module shares: the destination it renders for, what it renders, how it judges an answer.

A format is one module (``standard``, ``slack``, ``teams``, ``pagerduty``) with the same small interface::

    NAME: str                                        the webhook's ``format``
    SIGNED: bool                                     send Standard Webhooks signature headers
    render(event, destination) -> Rendered           the request body (and content type) for one event
    classify(status, body) -> Verdict                what the receiver's answer means for the delivery

``event`` is the event's wire form (``store.events.event_payload``); ``body`` is the first KiB of the
answer as text. Nothing here sends, stores or logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["succeeded", "retry", "failed", "gone"]

RETRYABLE_STATUSES = frozenset({408, 425, 429})
JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Destination:
    """What a format knows of the webhook it renders for; ``routing_key`` is a secret (never stored)."""

    webhook_id: str
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    routing_key: str | None = None
    public_url: str | None = None


@dataclass(frozen=True)
class Rendered:
    """One request: its body and the headers the format needs (content type)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))


@dataclass(frozen=True)
class Verdict:
    """What an answer means: the outcome, the attempt's error in words, and for ``gone`` why (the
    ``webhook.disabled`` reason code and the sentence the owner reads)."""

    outcome: Outcome
    error: str | None = None
    disable_reason: str | None = None
    disable_detail: str | None = None


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON: the exact bytes sent (and, for ``standard``, signed)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def http_outcome(status: int) -> Outcome:
    """2xx succeeds; 410 means the receiver is gone; 408/425/429/5xx retry; anything else fails.

    "Anything else" includes 3xx: a redirect is not followed (it could lead anywhere, past the SSRF
    guard's check of the saved URL), and one that repeats on every attempt is a wrong URL, which
    retrying cannot fix, like a 404.
    """
    if 200 <= status < 300:
        return "succeeded"
    if status == 410:
        return "gone"
    if status in RETRYABLE_STATUSES or status >= 500:
        return "retry"
    return "failed"


def http_verdict(status: int, error: str | None = None) -> Verdict:
    """The verdict of the status alone (a 410 disables the webhook as ``gone``)."""
    outcome = http_outcome(status)
    if outcome == "gone":
        return Verdict("gone", error, "gone", "the receiver answered 410 Gone")
    return Verdict(outcome, None if outcome == "succeeded" else error)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def one_line(text: str) -> str:
    """Line breaks and runs of spaces folded into single spaces."""
    return " ".join(text.split())
