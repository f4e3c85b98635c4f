"""``standard``: the event as it is (``store.events.event_payload``), signed per Standard Webhooks.

Success is any 2xx; ``410 Gone`` disables the webhook; 408/425/429/5xx are retried.
"""

from __future__ import annotations

from typing import Any

from tasks.webhooks.formats.base import Destination, Rendered, Verdict, encode_json, http_verdict

NAME = "standard"
SIGNED = True


def render(event: dict[str, Any], destination: Destination) -> Rendered:  # noqa: ARG001 - same interface
    """The event's wire form, compact JSON: the exact bytes that are signed."""
    return Rendered(encode_json(event))


def classify(status: int, body: str) -> Verdict:  # noqa: ARG001 - the status alone decides
    return http_verdict(status)
