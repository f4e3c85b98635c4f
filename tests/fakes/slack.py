"""A Slack incoming-webhooks fake: ``POST /services/<team>/<bot>/<secret>`` with a JSON message.

It checks what Slack documents for a message (https://api.slack.com/messaging/webhooks,
https://api.slack.com/reference/block-kit/blocks): ``text`` and/or ``blocks``; ``text`` at most
40,000 characters; at most 50 blocks; a ``header`` block's plain text at most 150 characters; a
``section``'s text at most 3,000 and at most 10 ``fields`` of 2,000 each; ``context`` elements at most
10; ``actions`` elements at most 25, a button's text at most 75 and its URL at most 3,000. It answers
as Slack does: ``200 ok`` (``text/html``), or an error status with the reason as plain text:

    400 invalid_payload     not JSON, not an object, or neither text nor blocks
    400 invalid_blocks      a block breaks the limits above
    403 invalid_token       an unknown webhook path
    404 no_service          the webhook was removed (``remove()``)
    410 channel_is_archived the channel was archived (``archive()``)
    503 service_unavailable while ``unavailable`` is set (an outage)
    429 rate_limited        (scripted) with ``Retry-After: 1``
    500 internal_error      (scripted)

``messages`` holds every accepted message; ``problems(message)`` returns what Slack would refuse.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

TEXT_MAX = 40_000
BLOCKS_MAX = 50
HEADER_MAX = 150
SECTION_TEXT_MAX = 3_000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2_000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
URL_MAX = 3_000
BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "rich_text"}

REASONS = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def _text_object(value: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> list[str]:
    if not isinstance(value, dict) or value.get("type") not in kinds or not isinstance(value.get("text"), str):
        return [f"{where}: a text object of type {' or '.join(kinds)} is required"]
    if not value["text"]:
        return [f"{where}: text must not be empty"]
    if len(value["text"]) > limit:
        return [f"{where}: text longer than {limit} characters"]
    return []


def _block_problems(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return [f"{where}: unknown block type"]
    kind = block["type"]
    if kind == "header":
        return _text_object(block.get("text"), f"{where}.text", HEADER_MAX, ("plain_text",))
    if kind == "section":
        found = []
        if "text" not in block and "fields" not in block:
            found.append(f"{where}: a section needs text or fields")
        if "text" in block:
            found += _text_object(block["text"], f"{where}.text", SECTION_TEXT_MAX)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= FIELDS_MAX:
                found.append(f"{where}.fields: 1 to {FIELDS_MAX} fields")
            else:
                for index, item in enumerate(fields):
                    found += _text_object(item, f"{where}.fields[{index}]", FIELD_TEXT_MAX)
        return found
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS_MAX:
            return [f"{where}.elements: 1 to {CONTEXT_ELEMENTS_MAX} elements"]
        return [p for i, e in enumerate(elements) for p in _text_object(e, f"{where}.elements[{i}]", SECTION_TEXT_MAX)]
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS_MAX:
            return [f"{where}.elements: 1 to {ACTIONS_ELEMENTS_MAX} elements"]
        found = []
        for index, element in enumerate(elements):
            at = f"{where}.elements[{index}]"
            if not isinstance(element, dict) or element.get("type") != "button":
                found.append(f"{at}: only buttons are expected")
                continue
            found += _text_object(element.get("text"), f"{at}.text", BUTTON_TEXT_MAX, ("plain_text",))
            url = element.get("url")
            if url is not None and (not isinstance(url, str) or len(url) > URL_MAX):
                found.append(f"{at}.url: at most {URL_MAX} characters")
        return found
    return []


def problems(message: Any) -> list[str]:
    """What Slack would refuse in ``message`` (empty: it would post it)."""
    if not isinstance(message, dict):
        return ["the payload is not a JSON object"]
    text, blocks = message.get("text"), message.get("blocks")
    if text is None and blocks is None:
        return ["no_text: a message needs text or blocks"]
    found = []
    if text is not None and (not isinstance(text, str) or len(text) > TEXT_MAX):
        found.append(f"text: a string of at most {TEXT_MAX} characters")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
            found.append(f"blocks: a list of at most {BLOCKS_MAX} blocks")
        else:
            for index, block in enumerate(blocks):
                found += _block_problems(block, f"blocks[{index}]")
    return found


class SlackFake(FakeServer):
    """Slack's incoming webhooks; ``hook_url`` is the URL of one incoming webhook."""

    PATH = "/services/T0MODELPULSE/B0ALERTS/xoxsecret0123456789abcdef"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.refused: list[tuple[int, str]] = []
        self.removed = False
        self.archived = False
        self.unavailable = False

    @property
    def hook_url(self) -> str:
        return f"{self.url}{self.PATH}"

    def remove(self) -> None:
        """The incoming webhook is removed from the Slack app: every post answers 404 no_service."""
        self.removed = True

    def archive(self) -> None:
        """Its channel is archived: every post answers 410 channel_is_archived."""
        self.archived = True

    def error_reply(self, status: int) -> Reply:
        headers = {"Content-Type": "text/plain", **({"Retry-After": "1"} if status == 429 else {})}
        return Reply(status, raw=REASONS.get(status, "error").encode(), headers=headers)

    def route(self, request: Request) -> Reply:
        if self.unavailable:
            return self._refuse(503, "service_unavailable")
        if request.method != "POST" or request.path != self.PATH:
            return self._refuse(403, "invalid_token")
        if self.removed:
            return self._refuse(404, "no_service")
        if self.archived:
            return self._refuse(410, "channel_is_archived")
        if not (request.header("content-type") or "").startswith("application/json"):
            return self._refuse(400, "invalid_payload")
        try:
            message = json.loads(request.body)
        except ValueError:
            return self._refuse(400, "invalid_payload")
        found = problems(message)
        if found:
            return self._refuse(400, "invalid_blocks" if "blocks" in found[0] else "invalid_payload")
        self.messages.append(message)
        return Reply(200, raw=b"ok", headers={"Content-Type": "text/html"})

    def _refuse(self, status: int, reason: str) -> Reply:
        self.refused.append((status, reason))
        return Reply(status, raw=reason.encode(), headers={"Content-Type": "text/plain"})
