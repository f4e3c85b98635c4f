"""A loopback server that answers every request with one canned reply and records each request
(headers included): a new origin that must see nothing, or an upstream whose error page must not
leak into ModelPulse's answers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request


def html_page(status: int) -> tuple[str, bytes]:
    """A unique marker and an HTML error page (a proxy's, a metadata service's) that carries it."""
    marker = f"SECRET-MARKER-{uuid.uuid4().hex}"
    page = f"<html><head><title>{status}</title></head><body><h1>{marker}</h1>iam-role: {marker}</body></html>"
    return marker, page.encode()


class CannedServer(FakeServer):
    """Answers ``status`` with ``body`` (JSON-encoded unless bytes) to every request."""

    def __init__(self, status: int = 200, body: Any = None, content_type: str | None = None) -> None:
        super().__init__()
        self.answer(status, body, content_type)

    def answer(self, status: int, body: Any, content_type: str | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps({} if body is None else body).encode()
        kind = content_type or ("text/html" if isinstance(body, bytes) else "application/json")
        self._reply = Reply(status, raw=raw, headers={"Content-Type": kind})

    def route(self, request: Request) -> Reply:
        return self._reply
