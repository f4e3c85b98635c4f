"""Real HTTP webhook receivers on loopback that record what they got and answer from a script."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.support.servers import SHUTDOWN_POLL_SECONDS


@dataclass
class Reply:
    """One scripted answer; ``hold`` makes the receiver wait (up to ``hold_seconds``) before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hold: threading.Event | None = None
    hold_seconds: float = 20.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    def verify(self, secret: str) -> dict[str, Any]:
        """Verify with the Standard Webhooks reference library, exactly as a receiver would."""
        return StandardWebhook(secret).verify(self.body, self.headers)


class _BurstServer(ThreadingHTTPServer):
    """Accepts bursts as a real receiver does: socketserver's listen backlog is 5, and a dispatcher sends
    an event's deliveries at once (a burst of 36 connections on a busy machine overflowed it, and the
    kernel reset the connections it could not queue); nginx's default is 511."""

    request_queue_size = 512


class Receiver:
    """A threaded HTTP server on 127.0.0.1; replies follow ``script``, then the last reply repeats."""

    def __init__(self, *script: Reply, port: int = 0) -> None:
        self.script = list(script) or [Reply()]
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                record = Received({k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    index = len(receiver.received)
                    receiver.received.append(record)
                    reply = receiver.script[min(index, len(receiver.script) - 1)]
                if reply.hold is not None:
                    reply.hold.wait(reply.hold_seconds)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                record.answered = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _BurstServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for reply in self.script:
            if reply.hold is not None:
                reply.hold.set()
        self.server.shutdown()
        self.server.server_close()
