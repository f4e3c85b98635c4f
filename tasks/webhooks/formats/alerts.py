"""An event in the words a person on call reads: what happened, to what, how bad, and where to look.

``alert_for(event, destination)`` is what the Slack, Teams and PagerDuty formats render, each in its own
shape, so the three say the same thing. Events are read defensively: ``data`` beyond the catalog's
required fields may be missing (an event published before the catalog validated it).

Episodes: ``threshold.breached`` / ``threshold.resolved`` and a monitor's ``drift.detected`` /
``drift.resolved`` share an ``episode_key`` built from the id of the event that opened the episode,
so PagerDuty's ``dedup_key`` is the same for the trigger and the resolve of one episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from store.event_catalog import BY_TYPE, SEVERITIES
from tasks.webhooks.formats.base import Destination, one_line

RESOLVING_TYPES = frozenset({"threshold.resolved", "drift.resolved"})
MAX_LISTED_FEATURES = 5


@dataclass(frozen=True)
class Alert:
    event_id: str
    event_type: str
    timestamp: str
    title: str  # "Threshold breached"
    subject: str  # what it is about: the model, or the webhook
    headline: str  # what happened, in one line
    severity: str  # critical | error | warning | info
    resolves: bool  # ends an episode
    episode_key: str  # PagerDuty's dedup_key: one per episode (or per event outside episodes)
    facts: list[tuple[str, str]] = field(default_factory=list)
    link: str | None = None
    component: str | None = None  # the metric or feature, where there is one
    group: str | None = None  # the project, where there is one

    @property
    def label(self) -> str:
        """``RESOLVED`` for an episode's end, else the severity in capitals."""
        return "RESOLVED" if self.resolves else self.severity.upper()

    def one_liner(self) -> str:
        """``[ERROR] fraud: Threshold breached: latency_ms.p95 = 812.5 (> 250)``: severity, subject, what."""
        return one_line(f"[{self.label}] {self.subject}: {self.title}: {self.headline}")


def number(value: Any) -> str:
    """A measured value for people: 4 significant digits, integers as they are."""
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _window(window: Any) -> str | None:
    if isinstance(window, dict) and window.get("from") and window.get("to"):
        return f"{window['from']} to {window['to']}"
    return None


def _facts(*pairs: tuple[str, Any]) -> list[tuple[str, str]]:
    return [(label, _text(value)) for label, value in pairs if value not in (None, "", [])]


def _path(*segments: str) -> str:
    return "/".join(quote(segment, safe="") for segment in segments)


def _threshold(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    rule = f"{data.get('operator', '')} {number(data.get('threshold'))}".strip()
    headline = f"{data.get('metric')} = {number(data.get('value'))} ({rule})"
    facts = _facts(
        ("Model", data.get("model")),
        ("Metric", data.get("metric")),
        ("Value", number(data.get("value"))),
        ("Threshold", rule),
        ("Feature", data.get("feature")),
        ("Window", _window(data.get("window"))),
    )
    return headline, facts


def _threshold_resolved(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    rule = f"{data.get('operator') or ''} {number(data.get('threshold'))}".strip()
    reason = data.get("reason") or "recovered"
    if reason == "recovered":
        headline = f"{data.get('metric')} = {number(data.get('value'))}, back within bounds (rule {rule})"
    else:
        headline = f"{data.get('metric')}: the threshold rule was {reason.removeprefix('threshold_')}"
    facts = _facts(
        ("Model", data.get("model")),
        ("Metric", data.get("metric")),
        ("Value", number(data.get("value")) if data.get("value") is not None else None),
        ("Threshold", rule),
        ("Breached since", data.get("breached_at")),
        ("Reason", reason),
    )
    return headline, facts


def _drift(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    features = [f for f in data.get("features") or [] if isinstance(f, dict)]
    described = [
        f"{f.get('feature')} ({f.get('method') or data.get('method') or 'drift'} {number(f.get('value'))}"
        + (f" > {number(f.get('threshold'))})" if f.get("threshold") is not None else ")")
        for f in features[:MAX_LISTED_FEATURES]
    ]
    more = f" and {len(features) - MAX_LISTED_FEATURES} more" if len(features) > MAX_LISTED_FEATURES else ""
    if described:
        noun = "feature" if len(features) == 1 else "features"
        headline = f"{len(features)} {noun} drifted: {', '.join(described)}{more}"
    else:
        headline = "drift detected"
    window = data.get("window") if isinstance(data.get("window"), dict) else {}
    facts = _facts(
        ("Model", data.get("model")),
        ("Version", data.get("model_version")),
        ("Method", data.get("method")),
        (
            "Features",
            ", ".join(_text(f.get("feature")) for f in features[:20]) + (" ..." if len(features) > 20 else ""),
        ),
        ("Current window", _window(window.get("current"))),
        ("Reference window", _window(window.get("reference"))),
        ("Monitor", data.get("monitor_id")),
    )
    return headline, facts


def _drift_resolved(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    reason = data.get("reason") or "recovered"
    headline = {
        "recovered": "the latest drift check found no drift",
        "monitor_deleted": "the drift monitor was deleted",
        "monitor_disabled": "the drift monitor was disabled",
    }.get(reason, reason)
    facts = _facts(
        ("Model", data.get("model")),
        ("Version", data.get("model_version")),
        ("Monitor", data.get("monitor_id")),
        ("Drifting since", data.get("drifting_since")),
        ("Reason", reason),
    )
    return headline, facts


def _recommendation(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    headline = f"{data.get('kind')}: {data.get('reason')}"
    return headline, _facts(("Model", data.get("model")), ("Kind", data.get("kind")), ("Reason", data.get("reason")))


def _registered(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    where = ", ".join(_text(v) for v in (data.get("integration_type"), data.get("source")) if v)
    headline = f"{data.get('name')} version {data.get('version')} registered" + (f" ({where})" if where else "")
    facts = _facts(
        ("Model", data.get("name")),
        ("Version", data.get("version")),
        ("Registry", data.get("integration_type")),
        ("External id", data.get("external_id")),
        ("Source", data.get("source")),
    )
    return headline, facts


def _webhook_disabled(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    headline = f"webhook {data.get('name')} was disabled: {data.get('detail') or data.get('reason')}"
    facts = _facts(
        ("Webhook", data.get("name")),
        ("Format", data.get("format")),
        ("URL", data.get("url")),
        ("Reason", data.get("reason")),
        ("Disabled at", data.get("disabled_at")),
    )
    return headline, facts


def _exhausted(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    headline = (
        f"a {data.get('event_type')} delivery to {data.get('webhook_name')} failed "
        f"{data.get('attempts')} times" + (f" (last: {data.get('last_error')})" if data.get("last_error") else "")
    )
    facts = _facts(
        ("Webhook", data.get("webhook_name")),
        ("Event", f"{data.get('event_type')} {data.get('event_id')}"),
        ("Delivery", data.get("delivery_id")),
        ("Attempts", data.get("attempts")),
        ("Last error", data.get("last_error")),
    )
    return headline, facts


def _test(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    return _text(data.get("message"), "test event"), []


def _other(data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    scalars = [(str(k), v) for k, v in data.items() if isinstance(v, (str, int, float, bool))][:10]
    return "event received", _facts(*scalars)


_DESCRIBE = {
    "threshold.breached": _threshold,
    "threshold.resolved": _threshold_resolved,
    "drift.detected": _drift,
    "drift.resolved": _drift_resolved,
    "recommendation.created": _recommendation,
    "model.registered": _registered,
    "webhook.disabled": _webhook_disabled,
    "delivery.exhausted": _exhausted,
    "webhook.test": _test,
}


def _subject(event_type: str, data: dict[str, Any], destination: Destination) -> str:
    if event_type == "webhook.test":
        return destination.name or "webhook"
    if event_type == "webhook.disabled":
        return _text(data.get("name"), "webhook")
    if event_type == "delivery.exhausted":
        return _text(data.get("webhook_name"), "webhook")
    if event_type == "model.registered":
        return _text(data.get("name"), "model")
    return _text(data.get("model"), "ModelPulse")


def _resource_path(event: dict[str, Any]) -> str | None:
    """The API path of what the event is about, under ``/organizations/{organization_id}``."""
    data, kind = event.get("data") or {}, event.get("type")
    organization = _text(event.get("organization_id"))
    base = f"/organizations/{_path(organization)}"
    if kind in ("threshold.breached", "threshold.resolved") and data.get("threshold_id"):
        return f"{base}/thresholds/{_path(data['threshold_id'])}"
    if kind in ("drift.detected", "drift.resolved") and data.get("check_id"):
        return f"{base}/drift-checks/{_path(data['check_id'])}"
    if kind == "drift.resolved" and data.get("model"):
        return f"{base}/models/{_path(data['model'])}/monitor"
    if kind == "recommendation.created" and data.get("recommendation_id"):
        return f"{base}/recommendations/{_path(data['recommendation_id'])}"
    if kind == "model.registered" and data.get("integration_id"):
        return f"{base}/integrations/{_path(data['integration_id'])}"
    if kind == "delivery.exhausted" and data.get("webhook_id") and data.get("delivery_id"):
        return f"{base}/webhooks/{_path(data['webhook_id'])}/history/{_path(data['delivery_id'])}"
    if kind in ("webhook.disabled", "webhook.test") and data.get("webhook_id"):
        return f"{base}/webhooks/{_path(data['webhook_id'])}"
    return None


def episode_key(event: dict[str, Any]) -> str:
    """One key per episode: the id of the event that opened it (this event's own id outside episodes).

    Used as PagerDuty's ``dedup_key`` (at most 255 characters; event ids are 30).
    """
    data = event.get("data") or {}
    opened_by = data.get("episode_event_id") if event.get("type") != "threshold.breached" else None
    return f"modelpulse-{opened_by if isinstance(opened_by, str) and opened_by else event.get('id')}"


def severity_of(event: dict[str, Any], destination: Destination) -> str:
    """The webhook's ``config.severity``, else the event's own (a threshold's), else its type's default."""
    configured = destination.config.get("severity")
    if configured in SEVERITIES:
        return configured
    own = (event.get("data") or {}).get("severity")
    if own in SEVERITIES:
        return own
    entry = BY_TYPE.get(_text(event.get("type")))
    return entry.severity if entry is not None else "info"


def alert_for(event: dict[str, Any], destination: Destination) -> Alert:
    """The alert a person reads for ``event`` (its wire form, ``store.events.event_payload``)."""
    kind = _text(event.get("type"))
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    headline, facts = _DESCRIBE.get(kind, _other)(data)
    entry = BY_TYPE.get(kind)
    path = _resource_path(event)
    public_url = (destination.public_url or "").rstrip("/")
    return Alert(
        event_id=_text(event.get("id")),
        event_type=kind,
        timestamp=_text(event.get("timestamp")),
        title=entry.title if entry is not None else kind,
        subject=_subject(kind, data, destination),
        headline=one_line(headline),
        severity=severity_of(event, destination),
        resolves=kind in RESOLVING_TYPES,
        episode_key=episode_key(event),
        facts=facts,
        link=f"{public_url}{path}" if public_url and path else None,
        component=_text(data.get("metric") or data.get("feature")) or None,
        group=_text(event.get("project_id")) or None,
    )
