"""A Splunk HTTP Event Collector fake: ``/services/collector/event`` (concatenated JSON events),
``/services/collector/health``, ``Authorization: Splunk <token>``, and HEC's documented reply codes.

Faults:

- ``disable_token()``: the token answers 403 code 1 (disabled);
- ``invalid(record_id)``: the event whose ``fields["modelpulse.id"]`` is that id is invalid: HEC
  indexes the events before it and answers 400 code 6 with ``invalid-event-number``;
- ``busy(times)``: the next ``times`` event requests answer 503 code 9 (server busy);
- ``script(...)``/``latency`` as in `FakeServer`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

HEC_REPLIES = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    9: (503, "Server is busy"),
    17: (200, "HEC is healthy"),
}


def hec(code: int, **extra: Any) -> Reply:
    status, text = HEC_REPLIES[code]
    return Reply(status, {"text": text, "code": code, **extra})


class SplunkHecFake(FakeServer):
    def __init__(self, token: str = "hec-token"):
        super().__init__()
        self.token = token
        self.token_disabled = False
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        self._invalid: set[str] = set()
        self._busy = 0
        self._data_lock = threading.Lock()

    def disable_token(self) -> None:
        self.token_disabled = True

    def invalid(self, record_id: str) -> None:
        self._invalid.add(record_id)

    def busy(self, times: int = 1) -> None:
        self._busy += times

    def ids(self) -> list[str]:
        return [event["fields"]["modelpulse.id"] for event in self.events]

    def scriptable(self, request: Request) -> bool:
        return request.path.startswith("/services/collector/event")

    def error_reply(self, status: int) -> Reply:
        return hec(9) if status == 503 else Reply(status, {"text": "Internal server error", "code": 8})

    def route(self, request: Request) -> Reply:
        if request.path == "/services/collector/health":
            return hec(17)
        if request.path not in ("/services/collector/event", "/services/collector/event/1.0", "/services/collector"):
            return Reply(404, {"text": "The requested URL was not found on this server.", "code": 404})
        auth = request.header("Authorization")
        if not auth:
            return hec(2)
        scheme, _, token = auth.partition(" ")
        if scheme != "Splunk":
            return hec(3)
        if token != self.token:
            return hec(4)
        if self.token_disabled:
            return hec(1)
        with self._data_lock:
            if self._busy > 0:
                self._busy -= 1
                return hec(9)
            return self._ingest(request.body)

    def _ingest(self, body: bytes) -> Reply:
        text = body.decode()
        decoder = json.JSONDecoder()
        events: list[dict[str, Any]] = []
        position = 0
        while position < len(text):
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            try:
                event, position = decoder.raw_decode(text, position)
            except ValueError:
                return hec(6, **{"invalid-event-number": len(events)})
            events.append(event)
        if not events:
            return hec(5)
        self.batches += 1
        for number, event in enumerate(events):
            if "event" not in event or (event.get("fields") or {}).get("modelpulse.id") in self._invalid:
                return hec(6, **{"invalid-event-number": number})
            self.events.append(event)
        return hec(0)
