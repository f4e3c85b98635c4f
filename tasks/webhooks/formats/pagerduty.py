"""``pagerduty``: PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview).

Every event is sent to ``/v2/enqueue`` with the webhook's routing key (a secret, kept in its block).
Episode ends (``threshold.resolved``, ``drift.resolved``) ``resolve``; every other event ``trigger``s,
with ``payload.summary`` (at most 1,024 characters), ``source`` (``config.source``, else the model),
``severity`` (``config.severity``, else the threshold's, else the type's), ``timestamp``, ``component``,
``group``, ``class`` and the event's data as ``custom_details``. The ``dedup_key`` is the id of the
event that opened the episode (``alerts.episode_key``), so one episode is one incident: its trigger
opens it and its resolve closes it.

PagerDuty answers ``202`` (accepted); ``400`` is an event it rejected (recorded with its ``errors``,
not retried: the same event would be rejected again); 429 and 5xx are retried.
"""

from __future__ import annotations

import json
from typing import Any

from tasks.webhooks.formats.alerts import Alert, alert_for
from tasks.webhooks.formats.base import Destination, Rendered, Verdict, clip, encode_json, http_verdict

NAME = "pagerduty"
SIGNED = False

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1_024
SOURCE_MAX = 255
# PagerDuty refuses events over 512 KB; custom_details give way first.
EVENT_MAX_BYTES = 500_000


def pagerduty_event(alert: Alert, event: dict[str, Any], destination: Destination) -> dict[str, Any]:
    """The Events API v2 body (routing key included) for one alert."""
    routing = {"routing_key": destination.routing_key or "", "dedup_key": alert.episode_key}
    if alert.resolves:
        return {**routing, "event_action": "resolve"}
    source = destination.config.get("source") or (alert.subject if alert.subject != "ModelPulse" else "modelpulse")
    payload: dict[str, Any] = {
        "summary": clip(alert.one_liner(), SUMMARY_MAX),
        "source": clip(str(source), SOURCE_MAX),
        "severity": alert.severity,
        "timestamp": alert.timestamp,
        "class": alert.event_type,
        "custom_details": {"event_id": alert.event_id, **(event.get("data") or {})},
    }
    if alert.component:
        payload["component"] = clip(alert.component, SOURCE_MAX)
    if alert.group:
        payload["group"] = clip(alert.group, SOURCE_MAX)
    body: dict[str, Any] = {**routing, "event_action": "trigger", "payload": payload, "client": "ModelPulse"}
    if alert.link:
        body["links"] = [{"href": alert.link, "text": "View in ModelPulse"}]
        body["client_url"] = alert.link
    if len(encode_json(body)) > EVENT_MAX_BYTES:
        payload["custom_details"] = {"event_id": alert.event_id, "note": "data too large to attach; see ModelPulse"}
    return body


def render(event: dict[str, Any], destination: Destination) -> Rendered:
    return Rendered(encode_json(pagerduty_event(alert_for(event, destination), event, destination)))


def _reason(body: str) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return body.strip()[:300] or None
    if not isinstance(answer, dict):
        return None
    errors = answer.get("errors")
    details = "; ".join(str(e) for e in errors[:5]) if isinstance(errors, list) else ""
    message = str(answer.get("message") or answer.get("status") or "")
    return ": ".join(part for part in (message, details) if part)[:500] or None


def classify(status: int, body: str) -> Verdict:
    if 200 <= status < 300:
        return Verdict("succeeded")
    reason = _reason(body)
    return http_verdict(status, f"HTTP {status}: {reason}" if reason else None)
