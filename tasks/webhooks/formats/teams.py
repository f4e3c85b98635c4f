"""``teams``: a Microsoft Teams Workflows webhook message carrying one Adaptive Card.

The body is ``{"type": "message", "attachments": [one attachment of contentType
application/vnd.microsoft.card.adaptive]}``, the shape the Teams "post to a channel when a webhook
request is received" workflow posts as is. The card says what the Slack message says: a title
coloured by severity, the headline, the key figures as a FactSet and a "View in ModelPulse" button
when ``MODELPULSE_PUBLIC_URL`` is set. Teams refuses messages over about 28 KB, so text is clipped
well below that.

TextBlocks and fact values are rendered as a Markdown subset (emphasis, links, lists), so text that
comes from the event (a model name, a reason) is clipped first, then backslash-escaped: it shows as
written and cannot format the card or add a link to it.

The workflow answers ``202 Accepted``. A ``404`` whose error code is ``WorkflowNotFound`` (the
workflow was deleted) disables the webhook like a 410; 429 and 5xx are retried; any other error is
recorded and not retried.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tasks.webhooks.formats.alerts import Alert, alert_for
from tasks.webhooks.formats.base import Destination, Rendered, Verdict, clip, encode_json, http_verdict

NAME = "teams"
SIGNED = False

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
TEXT_MAX = 2_000
FACT_MAX = 500
FACTS_MAX = 10

_COLOR = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Accent"}

# Emphasis, strike-through, code and links anywhere (one pass, so an added backslash is never escaped
# again); headings, quotes, list items and ordered-list numbers at a line's start, after its indent.
_INLINE = re.compile(r"([\\*_`~\[\]()])")
_LINE_START = re.compile(r"^([ \t]*)(?:([#>+-])|(\d+)\.)", re.MULTILINE)


def _line_start(match: re.Match[str]) -> str:
    indent, marker, number = match.groups()
    return f"{indent}\\{marker}" if marker else f"{indent}{number}\\."


def markdown_text(text: str, limit: int) -> str:
    """``text`` clipped to ``limit`` characters, then escaped so a TextBlock shows it as written."""
    escaped = _INLINE.sub(r"\\\1", clip(text, limit))
    return _LINE_START.sub(_line_start, escaped)


def card(alert: Alert) -> dict[str, Any]:
    """The Adaptive Card for one alert."""
    color = "Good" if alert.resolves else _COLOR.get(alert.severity, "Default")
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": markdown_text(f"{alert.label}: {alert.title}: {alert.subject}", 300),
            "weight": "Bolder",
            "size": "Medium",
            "color": color,
            "wrap": True,
        },
        {"type": "TextBlock", "text": markdown_text(alert.headline, TEXT_MAX), "wrap": True},
    ]
    if alert.facts:
        facts = [
            {"title": clip(label, 100), "value": markdown_text(value, FACT_MAX)}
            for label, value in alert.facts[:FACTS_MAX]
        ]
        body.append({"type": "FactSet", "facts": facts})
    body.append(
        {
            "type": "TextBlock",
            "text": markdown_text(f"{alert.event_type} · {alert.event_id} · {alert.timestamp}", 300),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if alert.link:
        content["actions"] = [{"type": "Action.OpenUrl", "title": "View in ModelPulse", "url": alert.link}]
    return content


def message(alert: Alert) -> dict[str, Any]:
    """The Teams message: one Adaptive Card attachment."""
    return {
        "type": "message",
        "summary": clip(alert.one_liner(), 300),
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card(alert)}],
    }


def render(event: dict[str, Any], destination: Destination) -> Rendered:
    return Rendered(encode_json(message(alert_for(event, destination))))


def _error_code(body: str) -> tuple[str | None, str | None]:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, text = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None), (text if isinstance(text, str) else None)


def classify(status: int, body: str) -> Verdict:
    code, text = _error_code(body)
    error = f"HTTP {status}: {code}" + (f": {text[:300]}" if text else "") if code else None
    if status == 404 and code == "WorkflowNotFound":
        return Verdict(
            "gone", error, "workflow_not_found", "Teams answered 404 WorkflowNotFound: the workflow was deleted"
        )
    return http_verdict(status, error)
