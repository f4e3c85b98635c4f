"""Loopback stand-ins for Elasticsearch, Splunk HEC and Datadog that answer at once, for benchmarks.

They speak just enough of each protocol for the official clients and for ModelPulse's sinks:
Elasticsearch ``GET /``, ``_index_template``, ``_ilm/policy`` and ``_bulk``; HEC ``event``, ``ack``
and ``health``; Datadog ``/api/v2/logs``, ``/api/v2/series`` and ``/api/v1/validate``. Replies are
pre-computed (a ``_bulk`` answer is built once per item count and op type), records are counted with
a byte search instead of being parsed, and nothing is kept: what a stub costs must not be what a
benchmark measures. The wire-level fakes in ``tests/fakes/`` are the ones that check what real
servers check.

Run it as a child process and read the URL from its first line of output; it stops when its stdin
closes. ``GET /_stub/received`` answers how many records arrived (and gzip bodies among them).

    python bench/sink_stubs.py
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import threading
from collections import Counter
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_BULK_ACTION = re.compile(rb'^\{"(index|create)"', re.MULTILINE)


@lru_cache(maxsize=64)
def bulk_reply(op_type: str, count: int) -> bytes:
    """A ``_bulk`` answer with ``count`` successful items of ``op_type``."""
    item = {op_type: {"_index": "stub", "_id": "stub", "_version": 1, "result": "created", "status": 201}}
    return json.dumps({"took": 1, "errors": False, "items": [item] * count}).encode()


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: Counter[str] = Counter()
        self.next_ack = 0

    def add(self, **amounts: int) -> None:
        with self.lock:
            self.values.update(amounts)

    def ack_id(self) -> int:
        with self.lock:
            self.next_ack += 1
            return self.next_ack


COUNTS = _Counts()


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as every client here expects
    # Answers are written at once: with Nagle on, a small answer waits for the client's delayed ACK
    # (40 ms a request), which would make the stub, not the client, what sets the pace.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            COUNTS.add(gzip_requests=1)
            body = gzip.decompress(body)
        return body

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, b"")

    def do_GET(self) -> None:  # noqa: N802
        self._body()
        if self.path == "/_stub/received":
            with COUNTS.lock:
                return self._send(200, json.dumps(dict(COUNTS.values)).encode())
        if self.path == "/":
            return self._send(200, b'{"name":"stub","version":{"number":"8.19.0","build_flavor":"default"}}')
        if self.path.startswith("/services/collector/health"):
            return self._send(200, b'{"text":"HEC is healthy","code":17}')
        if self.path.startswith("/api/v1/validate"):
            return self._send(200, b'{"valid":true}')
        self._send(404, b'{"error":"not found"}')

    def do_PUT(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0].endswith("/_bulk"):  # the client sends _bulk as PUT
            return self.do_POST()
        self._body()
        self._send(200, b'{"acknowledged":true}')

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        path = self.path.split("?", 1)[0]
        if path.endswith("/_bulk"):
            actions = _BULK_ACTION.findall(body)
            COUNTS.add(records=len(actions), requests=1)
            op_type = actions[0].decode() if actions else "index"
            return self._send(200, bulk_reply(op_type, len(actions)))
        if path.startswith("/services/collector/ack"):
            asked = json.loads(body or b"{}").get("acks", [])
            return self._send(200, json.dumps({"acks": {str(ack): True for ack in asked}}).encode())
        if path.startswith("/services/collector"):
            COUNTS.add(records=body.count(b'"modelpulse.id"'), requests=1)
            reply = {"text": "Success", "code": 0}
            if self.headers.get("X-Splunk-Request-Channel"):
                reply["ackId"] = COUNTS.ack_id()
            return self._send(200, json.dumps(reply).encode())
        if path == "/api/v2/logs":
            COUNTS.add(records=body.count(b'"ddsource"'), requests=1)
            return self._send(202, b"{}")
        if path == "/api/v2/series":
            COUNTS.add(records=body.count(b'"metric"'), requests=1)
            return self._send(202, b'{"errors":[]}')
        self._send(404, b'{"error":"not found"}')


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    server = StubServer(("127.0.0.1", 0), StubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
