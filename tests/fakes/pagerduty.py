"""A PagerDuty Events API v2 fake: ``POST /v2/enqueue`` (https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty).

It checks an event as PagerDuty documents it: ``routing_key`` (32 characters, one of the fake's
integration keys), ``event_action`` (trigger, acknowledge, resolve), ``dedup_key`` at most 255
characters (required to acknowledge or resolve), and for a trigger a ``payload`` with ``summary``
(at most 1,024 characters), ``source`` and ``severity`` (critical, error, warning, info), an object
``custom_details``, the whole event at most 512 KB. It answers as PagerDuty does:

    202 {"status": "success", "message": "Event processed", "dedup_key": ...}
    400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}
    429 {"status": "throttle event", ...}      (scripted)
    500 / 502 / 503                            (scripted)

It keeps PagerDuty's alert state per ``dedup_key``: ``incidents[key]`` is ``triggered`` or
``resolved``; ``events`` holds every accepted event.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

SUMMARY_MAX = 1_024
DEDUP_KEY_MAX = 255
EVENT_MAX_BYTES = 512 * 1024
SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}


def problems(event: Any, routing_keys: set[str] | None = None) -> list[str]:
    """What PagerDuty would refuse in ``event`` (empty: it would accept it)."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    found = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        found.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif routing_keys is not None and key not in routing_keys:
        found.append("Invalid routing key")
    action = event.get("event_action")
    if action not in ACTIONS:
        found.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= DEDUP_KEY_MAX):
        found.append(f"'dedup_key' must be a string of at most {DEDUP_KEY_MAX} characters")
    if action in ("acknowledge", "resolve") and not dedup_key:
        found.append(f"'dedup_key' is required to {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*found, "'payload' is missing or not an object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary:
            found.append("'payload.summary' is missing or blank")
        elif len(summary) > SUMMARY_MAX:
            found.append(f"'payload.summary' is longer than {SUMMARY_MAX} characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            found.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            found.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            found.append("'payload.custom_details' must be an object")
    if len(json.dumps(event).encode()) > EVENT_MAX_BYTES:
        found.append(f"the event is larger than {EVENT_MAX_BYTES} bytes")
    return found


class PagerDutyFake(FakeServer):
    """PagerDuty's Events API v2 with the given integration (routing) keys."""

    def __init__(self, *routing_keys: str) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.events: list[dict[str, Any]] = []
        self.incidents: dict[str, str] = {}

    @property
    def events_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def error_reply(self, status: int) -> Reply:
        if status == 429:
            body = {"status": "throttle event", "message": "Requests for this service are arriving too quickly."}
            return Reply(429, body)
        if status == 400:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["injected"]})
        return Reply(status, {"status": "error", "message": f"injected {status}"})

    def route(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return Reply(404, {"status": "error", "message": "Not found"})
        try:
            event = json.loads(request.body)
        except ValueError:
            return Reply(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["invalid JSON"]}
            )
        found = problems(event, self.routing_keys)
        if found:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": found})
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        self.events.append(event)
        if event["event_action"] == "trigger":
            self.incidents[dedup_key] = "triggered"  # after a resolve, the same key opens a new incident
        elif event["event_action"] == "resolve" and dedup_key in self.incidents:
            self.incidents[dedup_key] = "resolved"
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})
