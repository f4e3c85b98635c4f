"""A Splunk HTTP Event Collector fake: ``/services/collector/event`` (concatenated JSON events),
``/services/collector/ack``, ``/services/collector/health``, ``Authorization: Splunk <token>``, and
HEC's documented reply codes.

Indexer acknowledgement is a setting of the token, as in Splunk (``SplunkHecFake(ack=True)``):

- with it, every event and ack request must name a data channel (``X-Splunk-Request-Channel`` or
  ``?channel=``): none answers code 10, one that is not a GUID code 11;
- each accepted event request answers an ``ackId``, counting from 0 per channel;
- ``POST /services/collector/ack?channel=`` with ``{"acks": [ids]}`` answers ``{"acks": {"id":
  bool}}``: true once ``ack_delay`` seconds have passed since the events were received; an ackId
  reported true is forgotten (asking again answers false);
- without it, the ack endpoint answers code 14 (ACK is disabled) and a channel is not required.

Faults:

- ``disable_token()``: the token answers 403 code 1 (disabled);
- ``invalid(record_id)``: the event whose ``fields["modelpulse.id"]`` is that id is invalid: HEC
  indexes the events before it and answers 400 code 6 with ``invalid-event-number`` (and no ackId);
- ``busy(times)``: the next ``times`` event requests answer 503 code 9 (server busy);
- ``lose_ack(n)``: the next ``n`` ackIds handed out never confirm, though their events were indexed
  (what a client sees when an indexer acknowledged nothing it had: a re-send duplicates them);
- ``never_ack(record_id)``: no request holding that record's event ever confirms (its re-sends
  neither), whatever order concurrent requests arrive in;
- ``script(...)``/``latency`` as in `FakeServer`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

EVENT_PATHS = ("/services/collector/event", "/services/collector/event/1.0", "/services/collector")
ACK_PATH = "/services/collector/ack"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
HEC_REPLIES = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    9: (503, "Server is busy"),
    10: (400, "Data channel is missing"),
    11: (400, "Invalid data channel"),
    14: (400, "ACK is disabled"),
    17: (200, "HEC is healthy"),
}


def hec(code: int, **extra: Any) -> Reply:
    status, text = HEC_REPLIES[code]
    return Reply(status, {"text": text, "code": code, **extra})


class _Channel:
    """One data channel's acknowledgement state: the next ackId and when each pending one indexes."""

    def __init__(self) -> None:
        self.next_ack_id = 0
        self.pending: dict[int, float | None] = {}  # ackId -> when it confirms (None: never)


class SplunkHecFake(FakeServer):
    def __init__(self, token: str = "hec-token", ack: bool = False, ack_delay: float = 0.0):
        super().__init__()
        self.token = token
        self.ack = ack
        self.ack_delay = ack_delay
        self.token_disabled = False
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        self.ack_queries = 0
        self.lost_acks: list[tuple[str, int]] = []  # (channel, ackId) lost so far
        self.confirmed: list[tuple[str, int]] = []  # (channel, ackId) reported true, in order
        self.acked_ids: dict[tuple[str, int], list[str]] = {}  # (channel, ackId) -> its record ids
        self._never: set[str] = set()
        self._invalid: set[str] = set()
        self._busy = 0
        self._lose = 0
        self._channels: dict[str, _Channel] = {}
        self._data_lock = threading.Lock()

    def disable_token(self) -> None:
        self.token_disabled = True

    def invalid(self, record_id: str) -> None:
        self._invalid.add(record_id)

    def busy(self, times: int = 1) -> None:
        self._busy += times

    def lose_ack(self, n: int = 1) -> None:
        with self._data_lock:
            self._lose += n

    def never_ack(self, record_id: str) -> None:
        with self._data_lock:
            self._never.add(record_id)

    def ids(self) -> list[str]:
        """The ``modelpulse.id`` of every indexed event, in arrival order (duplicates included)."""
        return [event["fields"]["modelpulse.id"] for event in self.events]

    def channels(self) -> list[str]:
        """The data channels that sent events, in first-use order."""
        with self._data_lock:
            return list(self._channels)

    def scriptable(self, request: Request) -> bool:
        return request.path.startswith("/services/collector/event")

    def error_reply(self, status: int) -> Reply:
        return hec(9) if status == 503 else Reply(status, {"text": "Internal server error", "code": 8})

    def route(self, request: Request) -> Reply:
        if request.path == "/services/collector/health":
            return hec(17)
        if request.path not in (*EVENT_PATHS, ACK_PATH):
            return Reply(404, {"text": "The requested URL was not found on this server.", "code": 404})
        refused = self._refuse_token(request)
        if refused is not None:
            return refused
        if request.path == ACK_PATH:
            return self._acks(request)
        channel = request.header("X-Splunk-Request-Channel") or (request.query.get("channel") or [None])[0]
        if self.ack:
            if not channel:
                return hec(10)
            if not GUID.match(channel):
                return hec(11)
        with self._data_lock:
            if self._busy > 0:
                self._busy -= 1
                return hec(9)
            indexed_before = len(self.events)
            reply = self._ingest(request.body)
            if reply.body["code"] == 0 and self.ack:
                ids = [event["fields"]["modelpulse.id"] for event in self.events[indexed_before:]]
                reply.body["ackId"] = self._issue_ack(channel, ids)
            return reply

    def _refuse_token(self, request: Request) -> Reply | None:
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
        return None

    def _issue_ack(self, channel: str, ids: list[str]) -> int:
        state = self._channels.setdefault(channel, _Channel())
        ack_id = state.next_ack_id
        state.next_ack_id += 1
        self.acked_ids[(channel, ack_id)] = ids
        never = not self._never.isdisjoint(ids)
        if never or self._lose > 0:
            if not never:
                self._lose -= 1
            self.lost_acks.append((channel, ack_id))
            state.pending[ack_id] = None
        else:
            state.pending[ack_id] = time.monotonic() + self.ack_delay
        return ack_id

    def _acks(self, request: Request) -> Reply:
        if not self.ack:
            return hec(14)
        channel = (request.query.get("channel") or [None])[0] or request.header("X-Splunk-Request-Channel")
        if not channel:
            return hec(10)
        if not GUID.match(channel):
            return hec(11)
        try:
            asked = json.loads(request.body)["acks"]
            if not isinstance(asked, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in asked):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return hec(6)
        now = time.monotonic()
        answer: dict[str, bool] = {}
        with self._data_lock:
            self.ack_queries += 1
            state = self._channels.get(channel)
            pending = state.pending if state else {}
            for ack_id in asked:
                due = pending.get(ack_id)
                indexed = due is not None and due <= now
                if indexed:
                    del pending[ack_id]  # Splunk forgets an ackId once it has reported it true
                    self.confirmed.append((channel, ack_id))
                answer[str(ack_id)] = indexed
        return Reply(200, {"acks": answer})

    def _ingest(self, body: bytes) -> Reply:
        """Index the events one by one; at the first invalid one, keep those before it (as HEC does)."""
        text = body.decode()
        decoder = json.JSONDecoder()
        position = number = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            try:
                event, position = decoder.raw_decode(text, position)
            except ValueError:
                event = None
            if not isinstance(event, dict) or "event" not in event:
                return self._partial(number, hec(6, **{"invalid-event-number": number}))
            if (event.get("fields") or {}).get("modelpulse.id") in self._invalid:
                return self._partial(number, hec(6, **{"invalid-event-number": number}))
            self.events.append(event)
            number += 1
        if not number:
            return hec(5)
        self.batches += 1
        return hec(0)

    def _partial(self, indexed: int, reply: Reply) -> Reply:
        if indexed:
            self.batches += 1
        return reply
