"""A Datadog API fake for ``datadog-api-client``: Logs intake v2 (``/api/v2/logs``), metrics v2
(``/api/v2/series``), events v1 (``/api/v1/events``) and key validation (``/api/v1/validate``).

``DD-API-KEY`` is checked on every request (403 ``{"errors": ["Forbidden"]}`` otherwise). Faults:

- ``rate_limit(times, reset=1)``: the next ``times`` intake requests answer 429 with
  ``X-RateLimit-Reset: <reset>`` (seconds until the window resets);
- ``script(...)``/``latency`` as in `FakeServer`.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

INTAKE_PATHS = ("/api/v2/logs", "/api/v2/series", "/api/v1/events")


class DatadogFake(FakeServer):
    def __init__(self, api_key: str = "dd-api-key"):
        super().__init__()
        self.api_key = api_key
        self.logs: list[dict[str, Any]] = []
        self.series: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.rate_limited = 0
        self._rate_limits: list[str] = []
        self._data_lock = threading.Lock()

    def rate_limit(self, times: int = 1, reset: int = 1) -> None:
        self._rate_limits.extend([str(reset)] * times)

    def scriptable(self, request: Request) -> bool:
        return request.path in INTAKE_PATHS

    def error_reply(self, status: int) -> Reply:
        return Reply(status, {"errors": [f"injected {status}"]})

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
            body = request.json()
            if request.path == "/api/v2/logs":
                self.logs.extend(body if isinstance(body, list) else [body])
                return Reply(202, {})
            if request.path == "/api/v2/series":
                self.series.extend(body["series"])
                return Reply(202, {"errors": []})
            self.events.append(body)
            return Reply(202, {"status": "ok", "event": {"id": len(self.events), "title": body.get("title")}})
