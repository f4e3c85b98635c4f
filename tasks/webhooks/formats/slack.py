"""``slack``: a Slack incoming-webhook message (https://api.slack.com/messaging/webhooks).

The message carries ``text`` (one line: severity, model, what happened; Slack shows it in
notifications) and Block Kit ``blocks``: a header, the headline, the key figures as fields, the
event's id and time, and a "View in ModelPulse" button when ``MODELPULSE_PUBLIC_URL`` is set. Slack's
limits are kept: ``text`` at most 40,000 characters, a header 150, a section 3,000, ten fields of
2,000 each, at most 50 blocks.

Slack answers ``200 ok``, or an HTTP error with a reason as plain text (``invalid_payload``,
``no_service``, ``channel_is_archived``, ``action_prohibited``...). ``no_service`` (the incoming
webhook was removed) and ``channel_is_archived`` on a 404 or 410 disable the webhook like a 410;
429 and 5xx are retried; any other error is recorded and not retried.
"""

from __future__ import annotations

from typing import Any

from tasks.webhooks.formats.alerts import Alert, alert_for
from tasks.webhooks.formats.base import Destination, Rendered, Verdict, clip, encode_json, http_verdict

NAME = "slack"
SIGNED = False

TEXT_MAX = 40_000
HEADER_MAX = 150
SECTION_MAX = 3_000
FIELD_MAX = 2_000
FIELDS_MAX = 10
BUTTON_URL_MAX = 3_000
BLOCKS_MAX = 50

# Slack's reasons that mean the incoming webhook will never work again.
GONE_REASONS = {
    "no_service": "Slack answered {status} no_service: the incoming webhook was removed",
    "channel_is_archived": "Slack answered {status} channel_is_archived: the webhook's channel is archived",
}

_EMOJI = {
    "critical": ":rotating_light:",
    "error": ":red_circle:",
    "warning": ":warning:",
    "info": ":information_source:",
}


def _escape(text: str) -> str:
    """Slack reads &, < and > in message text (and mrkdwn) as control characters: they are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(alert: Alert) -> dict[str, Any]:
    """The Slack message (``text`` and ``blocks``) for one alert."""
    emoji = ":white_check_mark:" if alert.resolves else _EMOJI.get(alert.severity, "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(f"{emoji} {alert.title}: {alert.subject}", HEADER_MAX),
                "emoji": True,
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(_escape(alert.headline), SECTION_MAX)}},
    ]
    if alert.facts:
        fields = [
            {"type": "mrkdwn", "text": clip(f"*{_escape(label)}*\n{_escape(value)}", FIELD_MAX)}
            for label, value in alert.facts[:FIELDS_MAX]
        ]
        blocks.append({"type": "section", "fields": fields})
    context = f"{alert.label} · {alert.event_type} · {alert.event_id} · {alert.timestamp}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(_escape(context), SECTION_MAX)}]})
    if alert.link and len(alert.link) <= BUTTON_URL_MAX:
        button = {"type": "button", "text": {"type": "plain_text", "text": "View in ModelPulse"}, "url": alert.link}
        blocks.append({"type": "actions", "elements": [button]})
    return {"text": clip(_escape(alert.one_liner()), TEXT_MAX), "blocks": blocks[:BLOCKS_MAX]}


def render(event: dict[str, Any], destination: Destination) -> Rendered:
    return Rendered(encode_json(message(alert_for(event, destination))))


def classify(status: int, body: str) -> Verdict:
    reason = body.strip().split("\n", 1)[0][:200]
    if status in (404, 410) and reason in GONE_REASONS:
        return Verdict("gone", f"HTTP {status}: {reason}", reason, GONE_REASONS[reason].format(status=status))
    return http_verdict(status, f"HTTP {status}: {reason}" if reason and not 200 <= status < 300 else None)
