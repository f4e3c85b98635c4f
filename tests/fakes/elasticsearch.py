"""An Elasticsearch fake that the official ``elasticsearch`` client accepts, and that checks what
Elasticsearch checks: ``GET /``, ``HEAD /``, composable index templates (``_index_template``), ILM
policies (``_ilm/policy``), data streams (``_data_stream``) and ``_bulk`` (NDJSON, ``filter_path``),
with ``X-Elastic-Product: Elasticsearch`` on every response.

What it enforces, as Elasticsearch does:

- a write to a name that does not exist creates it from the highest-priority matching template: a
  data stream if the template has ``data_stream``, else an index (with the template's mappings);
  Elasticsearch's built-in ``logs`` (``logs-*-*``) and ``metrics`` (``metrics-*-*``) templates, at
  priority 100, are there from the start;
- a template whose patterns overlap another's at the same priority is refused (400);
- a data stream accepts only ``create`` (another op answers 400 ``illegal_argument_exception``) and
  documents with an ``@timestamp``;
- ``create`` of an ``_id`` that exists answers 409 ``version_conflict_engine_exception``; ``index``
  replaces the document;
- mappings: the template's explicit ones plus dynamic mapping (``dynamic``, ``dynamic_templates``,
  ``date_detection``) that learns the first type seen per field path; a value the mapping cannot
  take (``"thirty"`` into a ``long``, a string into a ``date``, an object into a ``keyword``, a
  scalar into an ``object``) rejects that document with 400 ``mapper_parsing_exception``, the others
  in the same request pass.

Documents are kept by ``(index or data stream, _id)``. ``index_operations`` counts, per document,
every write operation that reached it (written, or refused 409 as already there); ``versions``
counts the times it was written. Faults:

- ``reject(record_id, status=400, type=..., reason=...)``: that item always fails (a mapping error);
- ``throttle(record_id, times)``: that item answers 429 the next ``times`` times;
- ``conflict(record_id)``: that item answers 409 (version conflict);
- ``script(429 | 500 | 503 | "drop", ...)``: whole ``_bulk`` requests fail (see `FakeServer`);
- ``refuse_template_writes()``: template and ILM policy PUTs answer 403 (a user without the
  ``manage_index_templates`` / ``manage_ilm`` privileges);
- ``latency``: seconds before every answer.

With ``keep_sources=False`` (benchmarks, long runs) documents are neither parsed nor kept nor
checked against mappings (``check_mappings`` says otherwise if given), so the fake stays cheap.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import orjson

from tests.fakes.server import FakeServer, Reply, Request

NUMERIC_TYPES = frozenset({"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float",
                           "unsigned_long"})
STRING_TYPES = frozenset({"keyword", "text", "wildcard", "match_only_text", "constant_keyword", "ip", "version"})
KNOWN_TYPES = NUMERIC_TYPES | STRING_TYPES | frozenset(
    {"object", "nested", "flattened", "boolean", "date", "date_nanos", "binary", "geo_point", "alias"}
)
ILM_PHASES = {
    "hot": {"rollover", "set_priority", "forcemerge", "readonly", "shrink", "unfollow", "downsample",
            "searchable_snapshot"},
    "warm": {"set_priority", "allocate", "migrate", "readonly", "shrink", "forcemerge", "unfollow", "downsample"},
    "cold": {"set_priority", "allocate", "migrate", "readonly", "searchable_snapshot", "unfollow", "downsample"},
    "frozen": {"searchable_snapshot", "unfollow"},
    "delete": {"wait_for_snapshot", "delete"},
}
ROLLOVER_CONDITIONS = {"max_age", "max_docs", "max_size", "max_primary_shard_size", "max_primary_shard_docs",
                       "min_age", "min_docs", "min_size", "min_primary_shard_size", "min_primary_shard_docs"}
TIME_VALUE = re.compile(r"^\d+(d|h|m|s|ms|micros|nanos)$")
DATA_STREAM_OPS_ONLY = "only write ops with an op_type of create are allowed in data streams"
BUILT_IN_TEMPLATES = {
    "logs": {"index_patterns": ["logs-*-*"], "priority": 100, "data_stream": {},
             "template": {"mappings": {"properties": {"@timestamp": {"type": "date"}}}},
             "_meta": {"managed": True, "description": "default logs template installed by x-pack"}},
    "metrics": {"index_patterns": ["metrics-*-*"], "priority": 100, "data_stream": {},
                "template": {"mappings": {"properties": {"@timestamp": {"type": "date"}}}},
                "_meta": {"managed": True, "description": "default metrics template installed by x-pack"}},
}


class Refused(Exception):
    """A request or document Elasticsearch would refuse: its status and error object."""

    def __init__(self, status: int, type_: str, reason: str, caused_by: dict[str, Any] | None = None):
        super().__init__(reason)
        self.status = status
        self.error: dict[str, Any] = {"type": type_, "reason": reason}
        if caused_by:
            self.error["caused_by"] = caused_by


@dataclass
class Mapping:
    """One index's (or data stream's) mappings, flattened by field path."""

    fields: dict[str, str] = field(default_factory=dict)  # path -> type ("object" for objects)
    dynamic: dict[str, Any] = field(default_factory=dict)  # object path ("" = root) -> dynamic setting
    disabled: set[str] = field(default_factory=set)  # object paths with enabled: false
    constants: dict[str, Any] = field(default_factory=dict)  # constant_keyword path -> value
    dynamic_templates: list[dict[str, Any]] = field(default_factory=list)
    date_detection: bool = True

    @classmethod
    def of(cls, mappings: dict[str, Any] | None) -> Mapping:
        mappings = mappings or {}
        mapping = cls(
            dynamic_templates=[next(iter(t.values())) for t in mappings.get("dynamic_templates") or []],
            date_detection=mappings.get("date_detection", True),
        )
        mapping.dynamic[""] = mappings.get("dynamic", True)
        mapping._add(mappings.get("properties") or {}, "")
        return mapping

    def _add(self, properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            path = f"{prefix}{name}"
            type_ = spec.get("type", "object" if "properties" in spec or "enabled" in spec else None)
            if type_ not in KNOWN_TYPES:
                raise Refused(400, "mapper_parsing_exception",
                              f"No handler for type [{type_}] declared on field [{name}]")
            self.fields[path] = type_
            if type_ in ("object", "nested"):
                self.fields[path] = "object"
                if "dynamic" in spec:
                    self.dynamic[path] = spec["dynamic"]
                if spec.get("enabled") is False:
                    self.disabled.add(path)
                self._add(spec.get("properties") or {}, f"{path}.")
            elif type_ == "constant_keyword" and "value" in spec:
                self.constants[path] = spec["value"]

    def dynamic_setting(self, parent: str) -> Any:
        """The ``dynamic`` setting in force for new fields of the object at ``parent``."""
        while True:
            if parent in self.dynamic:
                return self.dynamic[parent]
            if not parent:
                return True
            parent = parent.rpartition(".")[0]

    def dynamic_type(self, path: str, value: Any) -> str:
        """The type dynamic mapping gives a new field, as Elasticsearch decides it."""
        if isinstance(value, dict):
            json_type = "object"
        elif isinstance(value, bool):
            json_type = "boolean"
        elif isinstance(value, int):
            json_type = "long"
        elif isinstance(value, float):
            json_type = "double"
        elif self.date_detection and _is_date(value):
            json_type = "date"
        else:
            json_type = "string"
        for template in self.dynamic_templates:
            wanted = template.get("match_mapping_type", "*")
            if wanted not in ("*", json_type):
                continue
            if "path_match" in template and not fnmatchcase(path, template["path_match"]):
                continue
            if "match" in template and not fnmatchcase(path.rpartition(".")[2], template["match"]):
                continue
            type_ = template.get("mapping", {}).get("type", "{dynamic_type}")
            if type_ != "{dynamic_type}":
                return "object" if type_ == "nested" else type_
            break
        return {"string": "text", "double": "float"}.get(json_type, json_type)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.match(r"^\d{4}[-/]\d{2}[-/]\d{2}", value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("/", "-"))
    except ValueError:
        return False
    return True


def _preview(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class Target:
    """An index or a data stream: its kind, mappings, and (data streams) template and policy."""

    name: str
    kind: str  # "index" | "data_stream"
    mapping: Mapping
    template: str | None = None
    policy: str | None = None


class ElasticsearchFake(FakeServer):
    default_headers = {"X-Elastic-Product": "Elasticsearch"}

    def __init__(self, username: str | None = None, password: str | None = None, keep_sources: bool = True,
                 check_mappings: bool | None = None):
        super().__init__()
        self.username, self.password = username, password
        self.keep_sources = keep_sources
        self.check_mappings = keep_sources if check_mappings is None else check_mappings
        self.documents: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.index_operations: Counter[tuple[str, str]] = Counter()
        self.versions: Counter[tuple[str, str]] = Counter()
        self.op_types: Counter[str] = Counter()
        self.templates: dict[str, dict[str, Any]] = {name: dict(t) for name, t in BUILT_IN_TEMPLATES.items()}
        self.template_puts: Counter[str] = Counter()
        self.policies: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, Target] = {}
        self.bulk_requests = 0
        self._template_writes_refused = False
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

    def refuse_template_writes(self) -> None:
        self._template_writes_refused = True

    def _refuse_if_forbidden(self, action: str) -> None:
        if self._template_writes_refused:
            raise Refused(403, "security_exception",
                          f"action [{action}] is unauthorized for user [{self.username}] with effective roles "
                          "[modelpulse_writer], this action is granted by the cluster privileges "
                          "[manage_index_templates,manage,all]")

    # --- what was received -----------------------------------------------------------------
    def ids(self, index: str) -> set[str]:
        return {doc_id for (idx, doc_id) in self.documents if idx == index}

    def document(self, index: str, doc_id: str) -> dict[str, Any] | None:
        return self.documents.get((index, doc_id))

    def data_streams(self) -> set[str]:
        return {name for name, target in self.targets.items() if target.kind == "data_stream"}

    def field_type(self, target: str, path: str) -> str | None:
        """The type ``path`` is mapped to in an index or data stream (explicitly or learnt)."""
        return self.targets[target].mapping.fields.get(path)

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
        try:
            return self._route(request)
        except Refused as refused:
            return Reply(refused.status, {"error": {**refused.error, "root_cause": [refused.error]},
                                          "status": refused.status})

    def _route(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if path == "/" and method in ("GET", "HEAD"):
            return Reply(200, {
                "name": "fake-node",
                "cluster_name": "fake",
                "version": {"number": "8.19.0", "build_flavor": "default"},
                "tagline": "You Know, for Search",
            })
        if path.startswith("/_index_template/"):
            return self._index_template(method, path.rsplit("/", 1)[1], request)
        if path.startswith("/_ilm/policy/"):
            return self._ilm_policy(method, path.rsplit("/", 1)[1], request)
        if path.startswith("/_data_stream/") and method == "GET":
            return self._data_stream(path.rsplit("/", 1)[1])
        if path.endswith("/_bulk") and method in ("POST", "PUT"):
            return self._bulk(request)
        return Reply(404, {"error": {"type": "no_handler", "reason": path}, "status": 404})

    def _authorized(self, request: Request) -> bool:
        if self.username is None:
            return True
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.header("Authorization") == expected

    # --- templates, policies, data streams ---------------------------------------------------
    def _index_template(self, method: str, name: str, request: Request) -> Reply:
        with self._data_lock:
            if method == "PUT":
                self._refuse_if_forbidden("indices:admin/index_template/put")
                self._check_template(name, request.json())
                self.templates[name] = request.json()
                self.template_puts[name] += 1
                return Reply(200, {"acknowledged": True})
            if method == "DELETE" and name in self.templates:
                del self.templates[name]
                return Reply(200, {"acknowledged": True})
            if method == "GET" and name in self.templates:
                return Reply(200, {"index_templates": [{"name": name, "index_template": self.templates[name]}]})
        raise Refused(404, "resource_not_found_exception", f"index template matching [{name}] not found")

    def _check_template(self, name: str, body: Any) -> None:
        if not isinstance(body, dict) or not body.get("index_patterns"):
            raise Refused(400, "action_request_validation_exception",
                          "Validation Failed: 1: index patterns are missing;")
        unknown = set(body) - {"index_patterns", "priority", "template", "data_stream", "_meta", "composed_of",
                               "version", "allow_auto_create", "ignore_missing_component_templates", "deprecated"}
        if unknown:
            raise Refused(400, "x_content_parse_exception", f"[index_template] unknown field [{sorted(unknown)[0]}]")
        patterns = body["index_patterns"] if isinstance(body["index_patterns"], list) else [body["index_patterns"]]
        priority = body.get("priority", 0)
        mappings = (body.get("template") or {}).get("mappings") or {}
        mapping = Mapping.of(mappings)  # raises on unknown field types
        if "data_stream" in body and mapping.fields.get("@timestamp", "date") not in ("date", "date_nanos"):
            raise Refused(400, "illegal_argument_exception",
                          f"data stream timestamp field [@timestamp] is of type [{mapping.fields['@timestamp']}], "
                          "but [date,date_nanos] is expected")
        for other, template in self.templates.items():
            if other == name or template.get("priority", 0) != priority:
                continue
            theirs = template["index_patterns"]
            if any(fnmatchcase(a, b) or fnmatchcase(b, a) for a in patterns for b in theirs):
                raise Refused(
                    400, "illegal_argument_exception",
                    f"index template [{name}] has index patterns {patterns} matching patterns from existing "
                    f"templates [{other}] with patterns ({other} => {theirs}) that have the same priority "
                    f"[{priority}], multiple index templates may not match during index creation, please use a "
                    "different priority",
                )

    def _ilm_policy(self, method: str, name: str, request: Request) -> Reply:
        with self._data_lock:
            if method == "PUT":
                self._refuse_if_forbidden("cluster:admin/ilm/put")
                policy = self._checked_policy(request.json())
                stored = self.policies.get(name)
                if stored is None or stored["policy"] != policy:  # an unchanged policy keeps its version
                    self.policies[name] = {
                        "version": (stored["version"] + 1) if stored else 1,
                        "modified_date": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        "policy": policy,
                    }
                return Reply(200, {"acknowledged": True})
            if method == "GET" and name in self.policies:
                return Reply(200, {name: self.policies[name]})
            if method == "DELETE" and name in self.policies:
                del self.policies[name]
                return Reply(200, {"acknowledged": True})
        raise Refused(404, "resource_not_found_exception", f"Lifecycle policy not found: {name}")

    @staticmethod
    def _checked_policy(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) != {"policy"} or not isinstance(body["policy"], dict):
            raise Refused(400, "parse_exception", "request body is required and must hold only [policy]")
        policy = body["policy"]
        phases = policy.get("phases")
        if not isinstance(phases, dict):
            raise Refused(400, "x_content_parse_exception", "[put_lifecycle_request] failed to parse field [policy]")
        for phase, spec in phases.items():
            if phase not in ILM_PHASES:
                raise Refused(400, "illegal_argument_exception",
                              f"Timeseries lifecycle does not support phase [{phase}]")
            if "min_age" in spec and not TIME_VALUE.match(str(spec["min_age"])):
                raise Refused(400, "parse_exception",
                              f"failed to parse setting [min_age] with value [{spec['min_age']}]")
            for action, options in (spec.get("actions") or {}).items():
                if action not in ILM_PHASES[phase]:
                    raise Refused(400, "illegal_argument_exception",
                                  f"invalid action [{action}] defined in phase [{phase}]")
                if action == "rollover" and not (set(options) & ROLLOVER_CONDITIONS - {"min_age", "min_docs"}):
                    raise Refused(400, "action_request_validation_exception",
                                  "Validation Failed: 1: at least one max_* rollover condition must be set")
        return policy

    def _data_stream(self, name: str) -> Reply:
        target = self.targets.get(name)
        if target is None or target.kind != "data_stream":
            raise Refused(404, "index_not_found_exception", f"no such index [{name}]")
        return Reply(200, {"data_streams": [{
            "name": name,
            "timestamp_field": {"name": "@timestamp"},
            "indices": [{"index_name": f".ds-{name}-2026.11.01-000001"}],
            "generation": 1,
            "status": "GREEN",
            "template": target.template,
            "ilm_policy": target.policy,
        }]})

    def _target(self, name: str, op_type: str) -> Target:
        """The index or data stream ``name``, created from its template on first write."""
        target = self.targets.get(name)
        if target is not None:
            return target
        matching = [
            (template.get("priority", 0), template_name, template)
            for template_name, template in self.templates.items()
            if any(fnmatchcase(name, pattern) for pattern in template["index_patterns"])
        ]
        template_name, template = (max(matching, key=lambda m: m[0])[1:]) if matching else (None, {})
        body = template.get("template") or {}
        mapping = Mapping.of(body.get("mappings"))
        if "data_stream" in template:
            if op_type != "create":
                raise Refused(400, "illegal_argument_exception", DATA_STREAM_OPS_ONLY)
            mapping.fields.setdefault("@timestamp", "date")
            settings = body.get("settings") or {}
            nested = (settings.get("index") or {}).get("lifecycle") or {}
            policy = settings.get("index.lifecycle.name") or nested.get("name")
            target = Target(name, "data_stream", mapping, template_name, policy)
        else:
            target = Target(name, "index", mapping, template_name)
        self.targets[name] = target
        return target

    # --- bulk ----------------------------------------------------------------------------------
    def _bulk(self, request: Request) -> Reply:
        default_index = request.path[: -len("/_bulk")].strip("/") or None
        lines = [line for line in request.body.split(b"\n") if line.strip()]
        items = []
        errors = False
        position = 0
        with self._data_lock:
            self.bulk_requests += 1
            while position < len(lines):
                action = orjson.loads(lines[position])
                op_type, meta = next(iter(action.items()))
                has_source = op_type != "delete"
                source_line = lines[position + 1] if has_source else None
                position += 2 if has_source else 1
                index, doc_id = meta.get("_index", default_index), meta.get("_id")
                try:
                    item = self._apply(op_type, index, doc_id, source_line)
                except Refused as refused:
                    item = {"_index": index, "_id": doc_id, "status": refused.status, "error": refused.error}
                errors = errors or item["status"] >= 300
                self.op_types[op_type] += 1
                items.append({op_type: item})
        answer = _filtered({"took": 1, "errors": errors, "items": items}, request.query.get("filter_path"))
        return Reply(200, raw=orjson.dumps(answer), headers={"Content-Type": "application/json"})

    def _apply(self, op_type: str, index: str, doc_id: str, source_line: bytes | None) -> dict[str, Any]:
        base = {"_index": index, "_id": doc_id}
        if doc_id in self._rejections:
            status, kind, reason = self._rejections[doc_id]
            raise Refused(status, kind, reason)
        if self._throttles[doc_id] > 0:
            self._throttles[doc_id] -= 1
            raise Refused(429, "es_rejected_execution_exception", "rejected execution (queue capacity 200)")
        if doc_id in self._conflicts:
            raise Refused(409, "version_conflict_engine_exception", f"[{doc_id}]: version conflict")
        if op_type not in ("index", "create"):
            raise Refused(400, "illegal_argument_exception", f"the fake does not support [{op_type}] operations")
        target = self._target(index, op_type)
        if target.kind == "data_stream" and op_type != "create":
            raise Refused(400, "illegal_argument_exception", DATA_STREAM_OPS_ONLY)
        key = (target.name, doc_id)
        exists = key in self.documents
        if exists and op_type == "create":
            self.index_operations[key] += 1
            raise Refused(409, "version_conflict_engine_exception",
                          f"[{doc_id}]: version conflict, document already exists (current version "
                          f"[{self.versions[key]}])")
        source = None
        if self.check_mappings or self.keep_sources:
            source = orjson.loads(source_line)
            if target.kind == "data_stream" and source.get("@timestamp") is None:
                raise _parse_error("data stream timestamp field [@timestamp] is missing")
            if self.check_mappings:
                self._check_document(target.mapping, doc_id, source)
        elif target.kind == "data_stream" and b'"@timestamp"' not in source_line:
            raise _parse_error("data stream timestamp field [@timestamp] is missing")
        self.documents[key] = source if self.keep_sources else None
        self.index_operations[key] += 1
        self.versions[key] += 1
        return {**base, "_index": _write_index(target), "_version": self.versions[key],
                "result": "updated" if exists else "created", "status": 200 if exists else 201}

    def _check_document(self, mapping: Mapping, doc_id: str, source: dict[str, Any]) -> None:
        """Parse ``source`` against ``mapping`` as Elasticsearch does; keep what dynamic mapping
        learnt only if the whole document is accepted."""
        learnt: dict[str, str] = {}
        self._check_object(mapping, doc_id, source, "", learnt)
        mapping.fields.update(learnt)

    def _check_object(self, mapping: Mapping, doc_id: str, value: dict[str, Any], prefix: str,
                      learnt: dict[str, str]) -> None:
        for name, child in value.items():
            self._check_field(mapping, doc_id, f"{prefix}{name}", child, learnt)

    def _check_field(self, mapping: Mapping, doc_id: str, path: str, value: Any, learnt: dict[str, str]) -> None:
        if value is None:
            return
        if isinstance(value, list):
            for element in value:
                self._check_field(mapping, doc_id, path, element, learnt)
            return
        type_ = mapping.fields.get(path) or learnt.get(path)
        if type_ is None:
            setting = mapping.dynamic_setting(path.rpartition(".")[0])
            if setting == "strict":
                parent = path.rpartition(".")[0] or "_doc"
                raise Refused(400, "strict_dynamic_mapping_exception",
                              f"[1:1] mapping set to strict, dynamic introduction of [{path.rpartition('.')[2]}] "
                              f"within [{parent}] is not allowed")
            if setting in (False, "false"):
                return
            type_ = learnt[path] = mapping.dynamic_type(path, value)
        if type_ == "object":
            if not isinstance(value, dict):
                raise _parse_error(f"object mapping for [{path}] tried to parse field [{path.rpartition('.')[2]}] as "
                                   "object, but found a concrete value")
            if path not in mapping.disabled:
                self._check_object(mapping, doc_id, value, f"{path}.", learnt)
            return
        if type_ == "flattened":
            return
        problem = _value_problem(type_, value, mapping.constants.get(path))
        if problem is not None:
            raise _parse_error(
                f"failed to parse field [{path}] of type [{type_}] in document with id '{doc_id}'. "
                f"Preview of field's value: '{_preview(value)}'",
                problem,
            )


def _value_problem(type_: str, value: Any, constant: Any) -> dict[str, Any] | None:
    """Why a field of ``type_`` cannot take ``value`` (Elasticsearch's ``caused_by``), or None."""
    if isinstance(value, dict):
        return {"type": "illegal_state_exception", "reason": "Can't get text on a START_OBJECT"}
    if type_ in NUMERIC_TYPES:
        if isinstance(value, bool):
            return {"type": "illegal_argument_exception", "reason": f"Current token (VALUE_{str(value).upper()}) "
                    "not numeric, can not use numeric value accessors"}
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return {"type": "illegal_argument_exception", "reason": f'For input string: "{value}"'}
        return None
    if type_ in ("date", "date_nanos"):
        if isinstance(value, bool) or (isinstance(value, str) and not _is_date(value)):
            return {"type": "illegal_argument_exception", "reason": f"failed to parse date field [{value}] with "
                    "format [strict_date_optional_time||epoch_millis]"}
        return None
    if type_ == "boolean":
        if value in (True, False, "true", "false", ""):
            return None
        return {"type": "illegal_argument_exception",
                "reason": f"Failed to parse value [{_preview(value)}] as only [true] or [false] are allowed."}
    if type_ == "constant_keyword" and constant is not None and str(value) != str(constant):
        return {"type": "illegal_argument_exception",
                "reason": f"[constant_keyword] field only accepts values that are equal to the value defined in "
                f"the mappings [{constant}], but got [{value}]"}
    return None


def _parse_error(reason: str, caused_by: dict[str, Any] | None = None) -> Refused:
    return Refused(400, "mapper_parsing_exception", reason, caused_by)


def _write_index(target: Target) -> str:
    return f".ds-{target.name}-2026.11.01-000001" if target.kind == "data_stream" else target.name


def _filtered(answer: dict[str, Any], filter_path: list[str] | None) -> Any:
    """Elasticsearch's ``filter_path``: keep only the named paths (``*`` matches one key; arrays
    are transparent; objects left empty are dropped)."""
    if not filter_path:
        return answer
    paths = [p.split(".") for value in filter_path for p in value.split(",") if p]
    kept = _keep(answer, paths)
    return {} if kept is _DROP else kept


def _keep(value: Any, paths: list[list[str]]) -> Any:
    if any(not path for path in paths):
        return value
    if isinstance(value, list):
        kept = [_keep(element, paths) for element in value]
        return [k for k in kept if k is not _DROP]
    if not isinstance(value, dict):
        return _DROP
    result = {}
    for key, child in value.items():
        rest = [path[1:] for path in paths if fnmatchcase(key, path[0])]
        if rest:
            kept = _keep(child, rest)
            if kept is not _DROP and kept != {}:
                result[key] = kept
    return result if result else _DROP


_DROP = object()
