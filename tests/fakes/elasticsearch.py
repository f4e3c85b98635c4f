"""An Elasticsearch fake that the official ``elasticsearch`` client accepts: ``GET /``, ``HEAD /``,
index templates and ``_bulk`` (NDJSON), with ``X-Elastic-Product: Elasticsearch`` on every response.

It keeps the indexed documents by ``(index, _id)`` (so, as in Elasticsearch, a re-sent document
replaces itself) and counts every index operation per document. Faults:

- ``reject(record_id, status=400, type=..., reason=...)``: that item always fails (a mapping error);
- ``throttle(record_id, times)``: that item answers 429 the next ``times`` times;
- ``conflict(record_id)``: that item answers 409 (version conflict);
- ``script(429 | 500 | 503 | "drop", ...)``: whole ``_bulk`` requests fail (see `FakeServer`);
- ``latency``: seconds before every answer.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request


class ElasticsearchFake(FakeServer):
    default_headers = {"X-Elastic-Product": "Elasticsearch"}

    def __init__(self, username: str | None = None, password: str | None = None, keep_sources: bool = True):
        super().__init__()
        self.username, self.password = username, password
        self.keep_sources = keep_sources
        self.documents: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.index_operations: Counter[tuple[str, str]] = Counter()
        self.templates: dict[str, dict[str, Any]] = {}
        self.bulk_requests = 0
        self._rejections: dict[str, tuple[int, str, str]] = {}
        self._throttles: Counter[str] = Counter()
        self._conflicts: set[str] = set()
        self._data_lock = threading.Lock()

    # --- fault injection -------------------------------------------------------------------
    def reject(self, record_id: str, status: int = 400, type: str = "mapper_parsing_exception",
               reason: str = "failed to parse field [modelpulse.features.age] of type [long]") -> None:
        self._rejections[record_id] = (status, type, reason)

    def throttle(self, record_id: str, times: int = 1) -> None:
        self._throttles[record_id] += times

    def conflict(self, record_id: str) -> None:
        self._conflicts.add(record_id)

    # --- what was received -----------------------------------------------------------------
    def ids(self, index: str) -> set[str]:
        return {doc_id for (idx, doc_id) in self.documents if idx == index}

    def document(self, index: str, doc_id: str) -> dict[str, Any] | None:
        return self.documents.get((index, doc_id))

    # --- protocol --------------------------------------------------------------------------
    def scriptable(self, request: Request) -> bool:
        return request.path.endswith("/_bulk")

    def error_reply(self, status: int) -> Reply:
        kind = "es_rejected_execution_exception" if status == 429 else "internal_server_error"
        return Reply(status, {"error": {"type": kind, "reason": f"injected {status}"}, "status": status})

    def route(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(
                401,
                {"error": {"type": "security_exception", "reason": "unable to authenticate user"}, "status": 401},
                {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'},
            )
        if request.path == "/" and request.method in ("GET", "HEAD"):
            return Reply(200, {
                "name": "fake-node",
                "cluster_name": "fake",
                "version": {"number": "8.19.0", "build_flavor": "default"},
                "tagline": "You Know, for Search",
            })
        if request.path.startswith("/_index_template/"):
            name = request.path.rsplit("/", 1)[1]
            if request.method == "PUT":
                self.templates[name] = request.json()
                return Reply(200, {"acknowledged": True})
            if name in self.templates:
                return Reply(200, {"index_templates": [{"name": name, "index_template": self.templates[name]}]})
            return Reply(404, {"error": {"type": "resource_not_found_exception"}, "status": 404})
        if request.path.endswith("/_bulk") and request.method in ("POST", "PUT"):
            return self._bulk(request)
        return Reply(404, {"error": {"type": "no_handler", "reason": request.path}, "status": 404})

    def _authorized(self, request: Request) -> bool:
        if self.username is None:
            return True
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.header("Authorization") == expected

    def _bulk(self, request: Request) -> Reply:
        default_index = request.path[: -len("/_bulk")].strip("/") or None
        lines = [line for line in request.body.split(b"\n") if line.strip()]
        items = []
        errors = False
        position = 0
        with self._data_lock:
            self.bulk_requests += 1
            while position < len(lines):
                action = json.loads(lines[position])
                op_type, meta = next(iter(action.items()))
                has_source = op_type != "delete"
                source = json.loads(lines[position + 1]) if has_source else None
                position += 2 if has_source else 1
                index, doc_id = meta.get("_index", default_index), meta.get("_id")
                item = self._apply(op_type, index, doc_id, source)
                errors = errors or item["status"] >= 300
                items.append({op_type: item})
        return Reply(200, {"took": 1, "errors": errors, "items": items})

    def _apply(self, op_type: str, index: str, doc_id: str, source: Any) -> dict[str, Any]:
        base = {"_index": index, "_id": doc_id}
        if doc_id in self._rejections:
            status, kind, reason = self._rejections[doc_id]
            return {**base, "status": status, "error": {"type": kind, "reason": reason}}
        if self._throttles[doc_id] > 0:
            self._throttles[doc_id] -= 1
            return {**base, "status": 429, "error": {"type": "es_rejected_execution_exception",
                                                     "reason": "rejected execution (queue capacity 200)"}}
        if doc_id in self._conflicts:
            return {**base, "status": 409, "error": {"type": "version_conflict_engine_exception",
                                                     "reason": f"[{doc_id}]: version conflict"}}
        key = (index, doc_id)
        created = key not in self.documents
        self.documents[key] = source if self.keep_sources else None
        self.index_operations[key] += 1
        return {**base, "_version": self.index_operations[key], "result": "created" if created else "updated",
                "status": 201 if created else 200}
