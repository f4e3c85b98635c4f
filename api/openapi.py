"""OpenAPI 3.1 generated from the routes and the pydantic models that validate them."""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

from flask import Flask
from pydantic import BaseModel, TypeAdapter

from api.endpoint import EndpointSpec
from api.errors import AUTHENTICATION_FAILURES, INSUFFICIENT_ROLE
from api.permissions import roles_allowed
from api.schemas.events import example_event
from api.standard_json import MAX_DEPTH
from store.event_catalog import CATALOG, EventType

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status"],
}
PROBLEM_TITLES = {
    400: "Bad request",
    401: "Missing or invalid API key",
    403: f"The API key's role may not call this operation (type `{INSUFFICIENT_ROLE}`, naming `role` and "
    "`allowed_roles`)",
    404: "Not found (or another organization's)",
    409: "Conflict: a duplicate name in the organization, or the resource's state forbids it (disabled)",
    413: "Request body larger than the operation's limit (refused unread)",
    415: "Body not sent as uncompressed JSON (Content-Type: application/json)",
    422: "Validation failed, or the body is not standard JSON",
    429: "The API key's requests per minute are used up, or (type `" + AUTHENTICATION_FAILURES + "`) this "
    "client address had too many invalid keys this minute (see Retry-After)",
    502: "Upstream platform error",
    503: "The database or the Prefect server is unavailable; retry after Retry-After seconds",
    504: "Upstream platform timed out",
}
# What any authenticated operation may answer, whatever it does: every request counts against its
# key's rate limit, and needs the database.
EVERY_OPERATION_PROBLEMS = frozenset({429, 503})
ROLES_NOTE = "API key roles allowed: {roles} (any other role is answered 403)."

# The document's introduction (Markdown; the top of /docs).
DESCRIPTION = """Model registries, log and metric exports, and webhooks for ModelPulse.

**Authentication.** Every operation under `/organizations/{organization_id}` needs an API key of that
organization, sent as `Authorization: Bearer <key>` (on /docs: **Authorize**, then **Try it out**).
`modelpulse keys create <organization_id>` prints a new key. `/health`, `/openapi.json`, `/docs` and the
`/inbound/...` routes (authenticated by what the pushing platform signs or sends) take no key.

**Errors** are RFC 9457 `application/problem+json`: `type`, `title`, `status`, `detail`, and for a failed
validation `errors`, one `{"field", "message"}` per field. Each operation lists the statuses it may answer.

**Events sent to webhooks** are described under *Webhooks* below, one per event type (the document's
`webhooks` section), and at `GET /organizations/{organization_id}/event-types`. A `standard` webhook
receives `{"id", "type", "timestamp", "organization_id", "project_id", "data"}` as JSON, signed per
Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); `slack`, `teams` and
`pagerduty` webhooks receive the same events rendered for their service.
"""
BEARER_DESCRIPTION = (
    "An API key of the organization in the path (`modelpulse keys create <organization_id>`), sent as "
    "`Authorization: Bearer <key>`. Its role decides which operations it may call."
)

_SECONDS = {"type": "integer", "minimum": 0}
RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds until the key's next window starts.", "schema": _SECONDS},
    "RateLimit-Limit": {"description": "Requests allowed per key per minute.", "schema": _SECONDS},
    "RateLimit-Remaining": {"description": "Requests left in this window.", "schema": _SECONDS},
    "RateLimit-Reset": {"description": "Seconds until the window ends.", "schema": _SECONDS},
}


@cache
def _cached_json_schema(annotation: Any, mode: str) -> dict[str, Any]:
    return TypeAdapter(annotation).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]


def json_schema(annotation: Any, mode: str = "validation") -> dict[str, Any]:
    """The JSON schema pydantic makes of ``annotation`` (a copy: callers take ``$defs`` out of it).
    Built once per annotation: the whole document takes ~230 ms to build without the cache."""
    return copy.deepcopy(_cached_json_schema(annotation, mode))


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}

    def ref(self, annotation: Any, mode: str) -> dict[str, Any]:
        schema = json_schema(annotation, mode)
        self.components.update(schema.pop("$defs", {}))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and "title" in schema:
            name = schema["title"].replace("[", "_").replace("]", "").replace(",", "_")
            self.components[name] = schema
            return {"$ref": REF.format(model=name)}
        return schema


def _parameters(rule_arguments: set[str], path: str, spec: EndpointSpec, schemas: _Schemas) -> list[dict]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
        if name in rule_arguments
    ]
    if spec.query is not None:
        query_schema = json_schema(spec.query)
        schemas.components.update(query_schema.pop("$defs", {}))
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                parameter["description"] = prop["description"]
            if prop.get("type") == "array" or any(p.get("type") == "array" for p in prop.get("anyOf", [])):
                parameter["explode"] = True
            parameters.append(parameter)
    return parameters


SIGNATURE_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event id (evt_...), the same on every attempt: deduplicate on it.",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds of this attempt; refuse old ones (replays).",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">`, "
        "one per active signing secret.",
        "schema": {"type": "string"},
    },
]
FORMATS_NOTE = (
    "This is the `standard` format's request: the event as JSON, signed. A webhook of format `slack`, "
    "`teams` or `pagerduty` receives the same event rendered for that service instead (unsigned: its URL "
    "or routing key is the secret)."
)


def _event_operation(entry: EventType, schemas: _Schemas) -> dict[str, Any]:
    """The OpenAPI ``webhooks`` entry of one event type: what its receivers are sent."""
    data_ref = schemas.ref(entry.data, "validation")
    name = entry.data.__name__.removesuffix("Data") + "Event"
    schemas.components[name] = {
        "type": "object",
        "description": entry.description,
        "required": ["id", "type", "timestamp", "organization_id", "project_id", "data"],
        "properties": {
            "id": {"type": "string", "description": "evt_..., also sent as `webhook-id`."},
            "type": {"const": entry.type},
            "timestamp": {"type": "string", "format": "date-time"},
            "organization_id": {"type": "string"},
            "project_id": {"type": ["string", "null"]},
            "data": data_ref,
        },
    }
    kinds = [k for k, on in (("publishable", entry.publishable), ("operational", entry.operational)) if on]
    return {
        "post": {
            "operationId": "event_" + entry.type.replace(".", "_"),
            "summary": entry.title,
            "description": f"{entry.description}\n\n{FORMATS_NOTE}",
            "tags": ["events"] + kinds,
            "parameters": SIGNATURE_HEADERS,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=name)}, "example": example_event(entry)}
                },
            },
            "responses": {
                "2XX": {
                    "description": "Received. Anything else within 15 s is a failed attempt, retried on the schedule."
                },
                "410": {"description": "Gone: ModelPulse disables the webhook."},
            },
        }
    }


def openapi_document(app: Flask) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        spec: EndpointSpec | None = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        if spec is None:
            continue
        path = _PATH_PARAM.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": rule.endpoint.replace(".", "_"),
                "summary": spec.summary,
                "tags": [rule.endpoint.split(".")[0]],
                "parameters": _parameters(set(rule.arguments), rule.rule, spec, schemas),
                "responses": {},
            }
            if spec.description:
                operation["description"] = spec.description
            if not spec.public:
                allowed = roles_allowed(method, rule.rule)
                operation["x-modelpulse-roles"] = list(allowed)
                note = ROLES_NOTE.format(roles=", ".join(f"`{role}`" for role in allowed))
                operation["description"] = f"{spec.description}\n\n{note}" if spec.description else note
            if spec.body is not None:
                limit = int(app.config[spec.body_limit])
                operation["requestBody"] = {
                    "required": spec.body_required,
                    "description": f"Standard JSON (RFC 8259, UTF-8) of at most {limit:,} bytes, nested at most "
                    f"{MAX_DEPTH} levels.",
                    "x-max-body-bytes": limit,
                    "content": {"application/json": {"schema": schemas.ref(spec.body, "validation")}},
                }
            success: dict[str, Any] = {"description": "OK" if spec.status != 201 else "Created"}
            if spec.response is not None and spec.status != 204:
                success["content"] = {"application/json": {"schema": schemas.ref(spec.response, "serialization")}}
            if spec.status == 204:
                success["description"] = "No Content"
            if spec.status == 201:
                success["headers"] = {"Location": {"schema": {"type": "string"}}}
            operation["responses"][str(spec.status)] = success
            if spec.accepted is not None:
                operation["responses"]["202"] = {
                    "description": "Accepted",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": schemas.ref(spec.accepted, "serialization")}},
                }
            problems = set(spec.problems) | ({422} if spec.body is not None or spec.query is not None else set())
            if not spec.public:
                problems |= EVERY_OPERATION_PROBLEMS
                if operation["x-modelpulse-roles"] != ["admin", "publisher", "viewer"]:
                    problems |= {403}
            problems |= {413, 415} if spec.body is not None else set()
            for status in sorted(problems):
                operation["responses"][str(status)] = {
                    "description": PROBLEM_TITLES.get(status, "Error"),
                    "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
                }
                if status == 429:
                    operation["responses"]["429"]["headers"] = RATE_LIMIT_HEADERS
            if spec.public:
                operation["security"] = []
            paths.setdefault(path, {})[method.lower()] = operation
    webhooks = {entry.type: _event_operation(entry, schemas) for entry in CATALOG}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ModelPulse Integrations API", "version": "1.0.0", "description": DESCRIPTION},
        # Relative: the server that served this document, whatever its host and port (the docs page's
        # try-it-out calls it, behind a proxy too).
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        # OpenAPI 3.1: the requests ModelPulse sends to its webhooks, one per event type.
        "webhooks": webhooks,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": BEARER_DESCRIPTION}},
        },
    }
