"""A threaded loopback HTTP server base for the wire-level fakes, with fault injection.

A fake subclasses `FakeServer` and implements ``route(request) -> Reply``. Shared faults:

- ``latency``: seconds to sleep before answering every request;
- ``script(*faults, any_request=False)``: the next requests get these faults in order, each either
  ``None`` (answered normally), an HTTP status (answered with the fake's error body for it), ``"drop"`` (the connection is closed without an
  answer, as when a load balancer or the node dies mid-request), ``"hang"`` (no answer at all until
  the fake stops, or ``hang_seconds``) or ``"trickle"`` (the normal answer, one byte every
  ``trickle_interval`` seconds: every read succeeds, so only a total deadline ends it);
- ``abandoned``: how many hanging or trickling answers the client gave up on (it hung up).

``max_in_flight`` is the most requests it was answering at once (the client's concurrency).

Example:
    >>> with ElasticsearchFake() as es:  # doctest: +SKIP
    ...     es.script(429, "drop")
    ...     ...
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.servers import SHUTDOWN_POLL_SECONDS


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased (HTTP header names are case-insensitive)
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-answer (a killed worker, a dropped connection) is expected here.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeServer:
    """Owns the listening socket and the serving thread; subclasses answer requests."""

    default_headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.latency = 0.0
        self.hang_seconds = 60.0
        self.trickle_interval = 0.2
        self.abandoned = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        self.record_requests = True
        self._script: list[int | str | None] = []
        self._script_any: list[int | str | None] = []
        self._lock = threading.Lock()
        handler = self._handler_class()
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and trickling answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _hung_up(self) -> None:
        with self._lock:
            self.abandoned += 1

    def script(self, *faults: int | str | None, any_request: bool = False) -> None:
        """Give the next ``len(faults)`` requests these faults (``None``, a status, ``"drop"``,
        ``"hang"``, ``"trickle"``): requests ``scriptable`` accepts, or any request at all
        (``any_request``)."""
        with self._lock:
            (self._script_any if any_request else self._script).extend(faults)

    def next_fault(self, request: Request) -> int | str | None:
        """The scripted fault for this request, if any."""
        with self._lock:
            if self._script_any:
                return self._script_any.pop(0)
        if not self.scriptable(request):
            return None
        with self._lock:
            return self._script.pop(0) if self._script else None

    def scriptable(self, request: Request) -> bool:
        """Which requests scripted faults apply to (default: all)."""
        return True

    def error_reply(self, status: int) -> Reply:
        return Reply(status, {"error": f"injected {status}"})

    def route(self, request: Request) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # an answer is not held back for the client's delayed ACK

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer()
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                parts = urlsplit(self.path)
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = Request(self.command, parts.path, parse_qs(parts.query), headers, body)
                if fake.record_requests:
                    fake.requests.append(request)
                if fake.latency:
                    time.sleep(fake.latency)
                fault = fake.next_fault(request)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "hang":
                    self.close_connection = True
                    self._wait_for_hang_up(fake.hang_seconds)
                    return
                reply = fake.error_reply(fault) if isinstance(fault, int) else fake.route(request)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for name, value in {**fake.default_headers, **reply.headers}.items():
                    self.send_header(name, value)
                if reply.raw is None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
                if fault == "trickle":
                    self._trickle(payload if self.command != "HEAD" else b"")
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _wait_for_hang_up(self, seconds: float) -> None:
                """Say nothing until the client hangs up (counted), the fake stops, or ``seconds``."""
                self.connection.settimeout(0.1)
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and not fake._stopping.is_set():
                    try:
                        if self.connection.recv(1) == b"":
                            fake._hung_up()
                            return
                    except TimeoutError:
                        continue
                    except OSError:
                        fake._hung_up()
                        return

            def _trickle(self, payload: bytes) -> None:
                """Send the buffered head and the body a byte at a time, until done or hung up on."""
                self._headers_buffer.append(b"\r\n")
                answer = b"".join(self._headers_buffer) + payload
                self._headers_buffer = []
                self.close_connection = True
                for index in range(len(answer)):
                    if fake._stopping.wait(fake.trickle_interval):
                        return
                    try:
                        self.wfile.write(answer[index : index + 1])
                        self.wfile.flush()
                    except OSError:
                        fake._hung_up()
                        return

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        return Handler


