"""A Microsoft Teams Workflows webhook fake: ``POST /workflows/<id>/triggers/manual/paths/invoke?...``.

It checks the message the Teams "post to a channel when a webhook request is received" workflow
posts (https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook):
``{"type": "message", "attachments": [...]}`` with exactly one attachment of ``contentType``
``application/vnd.microsoft.card.adaptive`` whose ``content`` is an ``AdaptiveCard`` with a
``version`` and a ``body`` of known elements (TextBlock with text, FactSet of title/value strings,
Container, ColumnSet), ``Action.OpenUrl`` actions with a URL, and the whole message at most 28 KB.
It answers as the workflow's Logic Apps trigger does:

    202                                 accepted (empty body)
    400 InvalidRequestContent           not JSON, or a message or card Teams cannot post
    404 WorkflowNotFound                the workflow was deleted (``delete()``)
    429 WorkflowRequestsThrottled       (scripted) with ``Retry-After: 1``
    502 BadGateway / 503 ServiceUnavailable  (scripted)

``messages`` holds every accepted message; ``problems(message)`` returns what Teams would refuse;
``formatting(text)`` what Markdown a TextBlock (or a fact's value) would apply to ``text``.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE_MAX_BYTES = 28 * 1024
ELEMENTS = {"TextBlock", "FactSet", "Container", "ColumnSet", "Image"}
CODES = {
    400: "InvalidRequestContent",
    404: "WorkflowNotFound",
    429: "WorkflowRequestsThrottled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
}


def _element_problems(element: Any, where: str) -> list[str]:
    if not isinstance(element, dict) or element.get("type") not in ELEMENTS:
        return [f"{where}: unknown element"]
    if element["type"] == "TextBlock" and (not isinstance(element.get("text"), str) or not element["text"]):
        return [f"{where}.text: required"]
    if element["type"] == "FactSet":
        facts = element.get("facts")
        if not isinstance(facts, list) or not facts:
            return [f"{where}.facts: a non-empty list"]
        return [
            f"{where}.facts[{i}]: title and value strings"
            for i, fact in enumerate(facts)
            if not isinstance(fact, dict)
            or not isinstance(fact.get("title"), str)
            or not isinstance(fact.get("value"), str)
        ]
    return []


def problems(message: Any) -> list[str]:
    """What Teams would refuse in ``message`` (empty: it would post it)."""
    if not isinstance(message, dict) or message.get("type") != "message":
        return ['type: must be "message"']
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["attachments: exactly one attachment (the Adaptive Card)"]
    attachment = attachments[0]
    if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE_CARD:
        return [f"attachments[0].contentType: must be {ADAPTIVE_CARD}"]
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
        return ["attachments[0].content: an AdaptiveCard with a version"]
    body = card.get("body")
    if not isinstance(body, list) or not body:
        return ["attachments[0].content.body: a non-empty list"]
    found = [p for i, element in enumerate(body) for p in _element_problems(element, f"body[{i}]")]
    for index, action in enumerate(card.get("actions") or []):
        if not isinstance(action, dict) or action.get("type") != "Action.OpenUrl" or not action.get("url"):
            found.append(f"actions[{index}]: Action.OpenUrl with a url")
    if len(json.dumps(message).encode()) > MESSAGE_MAX_BYTES:
        found.append(f"the message is larger than {MESSAGE_MAX_BYTES} bytes")
    return found


_BLOCK_MARKER = re.compile(r"[ \t]*(#|>|[-+*][ \t]|\d+\.[ \t])")
_INLINE_MARKERS = {"*": "emphasis", "_": "emphasis", "`": "code", "~": "strike-through"}


def formatting(text: str) -> list[str]:
    """The Markdown a TextBlock would apply to ``text`` (empty: shown as written).

    A reading of the subset Adaptive Cards render: a backslash before ASCII punctuation makes it
    literal; emphasis, code, strike-through and ``[label](url)`` links inline; headings, quotes and
    list items at a line's start.
    """
    found = []
    for number, line in enumerate(text.split("\n")):
        marker = _BLOCK_MARKER.match(line)
        if marker:
            found.append(f"line {number}: starts with {marker.group(1).strip()!r}")
        index, link_open = 0, False
        while index < len(line):
            char = line[index]
            if char == "\\" and index + 1 < len(line) and line[index + 1] in string.punctuation:
                index += 2
                continue
            if char in _INLINE_MARKERS:
                found.append(f"line {number}: {_INLINE_MARKERS[char]} ({char!r} at {index})")
            elif char == "[":
                link_open = True
            elif char == "]" and link_open and line[index + 1 : index + 2] == "(":
                found.append(f"line {number}: a link at {index}")
            index += 1
    return found


def shown(text: str) -> str:
    """``text`` as a TextBlock shows it once its escapes are read (what the channel sees)."""
    return re.sub(rf"\\([{re.escape(string.punctuation)}])", r"\1", text)


class TeamsFake(FakeServer):
    """One Teams workflow; ``workflow_url`` is its trigger URL (the URL carries the signature)."""

    PATH = "/workflows/0f1e2d3c4b5a69788796a5b4c3d2e1f0/triggers/manual/paths/invoke"
    QUERY = "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cr3tSignatureOfTheWorkflow"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.deleted = False

    @property
    def workflow_url(self) -> str:
        return f"{self.url}{self.PATH}?{self.QUERY}"

    def delete(self) -> None:
        """The workflow is deleted: every post answers 404 WorkflowNotFound."""
        self.deleted = True

    def error_reply(self, status: int) -> Reply:
        headers = {"Retry-After": "1"} if status == 429 else {}
        return Reply(status, _error(CODES.get(status, "Error"), f"injected {status}"), headers=headers)

    def route(self, request: Request) -> Reply:
        if self.deleted or request.method != "POST" or request.path != self.PATH:
            return Reply(404, _error("WorkflowNotFound", "The workflow could not be found."))
        if request.query.get("sig") != ["s3cr3tSignatureOfTheWorkflow"]:
            return Reply(401, _error("DirectApiAuthorizationRequired", "The request must be authenticated."))
        try:
            message = json.loads(request.body)
        except ValueError:
            return Reply(400, _error("InvalidRequestContent", "The request content is not valid JSON."))
        found = problems(message)
        if found:
            return Reply(400, _error("InvalidRequestContent", "; ".join(found)))
        self.messages.append(message)
        return Reply(202, raw=b"")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
