"""A Datadog API fake for ``datadog-api-client``: Logs intake v2 (``/api/v2/logs``), metrics v2
(``/api/v2/series``), events v1 (``/api/v1/events``) and key validation (``/api/v1/validate``).

``DD-API-KEY`` is checked on every request (403 ``{"errors": ["Forbidden"]}`` otherwise). The intake
checks what Datadog documents (the pages are cited in ``tasks/sinks/datadog.py``):

- ``Content-Encoding``: logs take identity, gzip or deflate; series identity, deflate, gzip or zstd1
  (zstd1 only when the ``zstandard`` module is installed); events document none, so only identity. Another
  encoding answers 415; a body that does not decode (or is not JSON) answers 400.
- logs: a decompressed body over 5,000,000 bytes answers 413, more than 1,000 entries 400 (the docs
  name no status for that one); an entry over 1,000,000 bytes is accepted and counted in
  ``truncated`` (Datadog truncates it and answers 2xx).
- series: a body over 512,000 bytes as sent answers 413, and so does one whose decompressed size is
  not below 5,242,880 bytes. Decompression stops one byte past a limit (no inflating bombs).

Every request to an intake path that reached the checks is recorded in ``intake`` (path, encoding,
bytes as sent and decompressed, entries, status), so tests can assert every one was gzip and within
the limits. Faults:

- ``rate_limit(times, reset=1)``: the next ``times`` intake requests answer 429 with
  ``X-RateLimit-Reset: <reset>`` (seconds until the window resets);
- ``script(...)``/``latency`` as in `FakeServer`.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeServer, Reply, Request

try:
    import zstandard
except ImportError:  # zstd1 is then an encoding this fake does not take (415)
    zstandard = None

LOGS, SERIES, EVENTS = "/api/v2/logs", "/api/v2/series", "/api/v1/events"
INTAKE_PATHS = (LOGS, SERIES, EVENTS)
LOGS_MAX_BYTES = 5_000_000
LOGS_MAX_ENTRIES = 1000
LOG_MAX_ENTRY_BYTES = 1_000_000
SERIES_MAX_COMPRESSED_BYTES = 512_000
SERIES_MAX_BYTES = 5_242_880 - 1  # "less than 5242880 bytes"
EVENTS_MAX_BYTES = 5_242_880  # undocumented; only so a runaway body cannot fill the fake's memory
ENCODINGS = {
    LOGS: {"identity", "gzip", "deflate"},
    SERIES: {"identity", "deflate", "gzip"} | ({"zstd1"} if zstandard is not None else set()),
    EVENTS: {"identity"},
}
_SENT_ENCODING = "x-fake-sent-content-encoding"


@dataclass(frozen=True)
class IntakeRequest:
    """One intake request as it arrived and as the fake answered it."""

    path: str
    encoding: str  # "identity" when no Content-Encoding was sent
    sent_bytes: int  # the body as sent (compressed, if it was)
    decompressed_bytes: int | None  # None: it did not decode, or stopped past the limit
    entries: int | None
    status: int


class _TooLarge(Exception):
    pass


class _Undecodable(Exception):
    pass


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded per its ``Content-Encoding``, reading at most ``limit + 1`` bytes of output.

    Raises:
        _TooLarge: the decoded body is over ``limit`` bytes.
        _Undecodable: the body is not valid ``encoding`` data.
    """
    if encoding == "identity":
        data = body
    elif encoding in ("gzip", "deflate"):
        decoder = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            data = decoder.decompress(body, limit + 1)
        except zlib.error as error:
            raise _Undecodable(f"not {encoding} data: {error}") from None
        if len(data) <= limit and not decoder.eof:
            raise _Undecodable(f"truncated {encoding} data")
    else:  # zstd1
        try:
            data = zstandard.ZstdDecompressor().stream_reader(body).read(limit + 1)
        except zstandard.ZstdError as error:
            raise _Undecodable(f"not zstd data: {error}") from None
    if len(data) > limit:
        raise _TooLarge()
    return data


def _log_errors(status: int, title: str, detail: str) -> dict[str, Any]:
    """The Logs intake's error body (``HTTPLogErrors``)."""
    return {"errors": [{"status": str(status), "title": title, "detail": detail}]}


class DatadogFake(FakeServer):
    def __init__(self, api_key: str = "dd-api-key"):
        super().__init__()
        self.api_key = api_key
        self.logs: list[dict[str, Any]] = []
        self.series: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.intake: list[IntakeRequest] = []
        self.truncated = 0
        self.rate_limited = 0
        self._rate_limits: list[str] = []
        self._data_lock = threading.Lock()

    def rate_limit(self, times: int = 1, reset: int = 1) -> None:
        self._rate_limits.extend([str(reset)] * times)

    def scriptable(self, request: Request) -> bool:
        return request.path in INTAKE_PATHS

    def error_reply(self, status: int) -> Reply:
        return Reply(status, {"errors": [f"injected {status}"]})

    def intake_to(self, path: str) -> list[IntakeRequest]:
        """The recorded intake requests to one path, in arrival order."""
        with self._data_lock:
            return [r for r in self.intake if r.path == path]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler_class()

        class Handler(base):  # type: ignore[valid-type, misc]
            def _handle(self) -> None:
                # The shared handler decodes gzip/deflate before routing; this fake checks the
                # encoding and the compressed size itself, so it moves the header aside first.
                encoding = self.headers.get("Content-Encoding")
                if encoding is not None:
                    del self.headers["Content-Encoding"]
                    self.headers[_SENT_ENCODING] = encoding
                super()._handle()

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        return Handler

    def route(self, request: Request) -> Reply:
        if request.header("DD-API-KEY") != self.api_key:
            return Reply(403, {"errors": ["Forbidden"]})
        if request.path == "/api/v1/validate":
            return Reply(200, {"valid": True})
        if request.path not in INTAKE_PATHS or request.method != "POST":
            return Reply(404, {"errors": ["Not Found"]})
        with self._data_lock:
            if self._rate_limits:
                reset = self._rate_limits.pop(0)
                self.rate_limited += 1
                return Reply(
                    429,
                    {"errors": ["Too many requests"]},
                    {"X-RateLimit-Limit": "100", "X-RateLimit-Period": "10", "X-RateLimit-Remaining": "0",
                     "X-RateLimit-Reset": reset},
                )
        encoding = (request.header(_SENT_ENCODING) or "identity").strip().lower()
        reply, decompressed, entries = self._take(request, encoding)
        with self._data_lock:
            self.intake.append(
                IntakeRequest(request.path, encoding, len(request.body), decompressed, entries, reply.status)
            )
        return reply

    def _take(self, request: Request, encoding: str) -> tuple[Reply, int | None, int | None]:
        """Check and store one intake body: the reply, the decompressed size and the entry count."""
        path = request.path
        if encoding not in ENCODINGS[path]:
            unsupported = f"unsupported Content-Encoding {encoding}"
            return self._error(path, 415, "Unsupported Media Type", unsupported), None, None
        if path == SERIES and len(request.body) > SERIES_MAX_COMPRESSED_BYTES:
            return self._error(path, 413, "Payload Too Large", "payload over 512000 bytes"), None, None
        limit = {LOGS: LOGS_MAX_BYTES, SERIES: SERIES_MAX_BYTES, EVENTS: EVENTS_MAX_BYTES}[path]
        try:
            data = decompress(request.body, encoding, limit)
            body = orjson.loads(data)
        except _TooLarge:
            return self._error(path, 413, "Payload Too Large", f"decompressed payload over {limit} bytes"), None, None
        except (_Undecodable, orjson.JSONDecodeError) as error:
            return self._error(path, 400, "Bad Request", str(error)), None, None
        if path == LOGS:
            logs = body if isinstance(body, list) else [body]
            if len(logs) > LOGS_MAX_ENTRIES:
                return self._error(path, 400, "Bad Request", f"{len(logs)} entries, over 1000"), len(data), len(logs)
            with self._data_lock:
                self.truncated += sum(1 for log in logs if len(orjson.dumps(log)) > LOG_MAX_ENTRY_BYTES)
                self.logs.extend(logs)
            return Reply(202, {}), len(data), len(logs)
        if path == SERIES:
            with self._data_lock:
                self.series.extend(body["series"])
            return Reply(202, {"errors": []}), len(data), len(body["series"])
        with self._data_lock:
            self.events.append(body)
            event_id = len(self.events)
        return Reply(202, {"status": "ok", "event": {"id": event_id, "title": body.get("title")}}), len(data), 1

    @staticmethod
    def _error(path: str, status: int, title: str, detail: str) -> Reply:
        if path == LOGS:
            return Reply(status, _log_errors(status, title, detail))
        return Reply(status, {"errors": [f"{title}: {detail}"]})
