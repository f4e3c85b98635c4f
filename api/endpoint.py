"""``@endpoint``: validate a view's body and query with pydantic, render its result, describe it.

The same description feeds ``/openapi.json`` (see ``api/openapi.py``), so the document is generated
from the models that validate requests, never written by hand.

Example:
    ```python
    @bp.post("")
    @endpoint(body=WebhookIn, response=WebhookOut, status=201)
    def create_webhook(organization_id: str, body: WebhookIn):
        \"\"\"Create a webhook.\"\"\"
        return created(...)
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, current_app, json, request
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.db import db
from api.errors import PayloadTooLarge, Unprocessable, UnsupportedMediaType, field_path, validation_problem
from api.schemas.common import Page, PageQuery
from api.standard_json import NotStandardJson, find_string, parse_standard_json


@dataclass(frozen=True)
class EndpointSpec:
    summary: str
    description: str
    body: Any = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    problems: Sequence[int] = field(default_factory=tuple)
    public: bool = False
    accepted: Any = None  # the body of a 202 the view may answer instead (a long-running operation)
    body_limit: str = "MAX_BODY_BYTES"  # the app config key holding the largest body (bytes) it reads


@dataclass(frozen=True)
class Created:
    """A 201 answer: the created resource and where it lives."""

    body: Any
    location: str


@dataclass(frozen=True)
class Accepted:
    """A 202 answer (the work goes on): its status and where to follow it."""

    body: Any
    location: str


def _render(value: Any, status: int) -> Response:
    if isinstance(value, Response):
        return value
    headers: dict[str, str] = {}
    if isinstance(value, Created | Accepted):
        headers["Location"] = value.location
        status = 202 if isinstance(value, Accepted) else status
        value = value.body
    if value is None:
        return Response(status=status if status == 204 else 204)
    if isinstance(value, BaseModel):
        payload = value.model_dump(mode="json")
    else:
        payload = TypeAdapter(type(value)).dump_python(value, mode="json")
    return Response(json.dumps(payload), status=status, mimetype="application/json", headers=headers)


def request_body_limit() -> int:
    """The body limit of the request's operation: its ``body_limit`` config key, else ``MAX_BODY_BYTES``."""
    view = current_app.view_functions.get(request.endpoint or "")
    spec: EndpointSpec | None = getattr(view, "endpoint_spec", None)
    return int(current_app.config[spec.body_limit if spec is not None else "MAX_BODY_BYTES"])


def _refuse_large_bodies() -> None:
    # Runs before authentication and the view: a declared length past the limit is refused unread.
    # An undeclared (chunked) length is read one byte past the limit at most: werkzeug's reader stops
    # silently at its maximum, so that extra byte is what tells a body past the limit from one at it.
    limit = request_body_limit()
    request.max_content_length = limit + 1
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge.over(limit, request.content_length)


def init_app(app: Flask) -> None:
    """Bound every request's body (413 before it is read), whatever the route."""
    app.before_request(_refuse_large_bodies)


def _require_json_media_type() -> None:
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported: send the body uncompressed.")
    mimetype, charset = request.mimetype, request.mimetype_params.get("charset", "utf-8").lower()
    is_json = mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))
    if not is_json or charset not in ("utf-8", "utf8"):
        declared = (request.headers.get("Content-Type") or "none")[:100]
        raise UnsupportedMediaType(
            f"The body must be JSON sent as 'Content-Type: application/json' (UTF-8); got {declared!r}.",
            headers={"Accept-Post": "application/json"} if request.method == "POST" else None,
        )


def _json_body(required: bool) -> Any:
    raw = request.get_data()
    if len(raw) > request_body_limit():  # an undeclared (chunked) length ran past the limit
        raise PayloadTooLarge.over(request_body_limit())
    if not raw and not required:
        return {}  # an omitted optional body means every field's default
    if not raw:
        raise Unprocessable.field("body", "a JSON request body is required")
    _require_json_media_type()
    try:
        payload = parse_standard_json(raw)
    except NotStandardJson as error:
        raise Unprocessable.field(field_path(error.path), error.reason) from None
    if b"\\u0000" in raw:  # JSON can only carry NUL escaped, so the walk is rarely needed
        location = find_string(payload, lambda text: "\x00" in text)
        if location is not None:
            raise Unprocessable.field(field_path(location), "must not contain the NUL character")
    return payload


def _query_args(model: type[BaseModel]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for key, value in request.args.items(multi=True):
        if "\x00" in value or "\x00" in key:
            raise Unprocessable.field(f"query.{key}", "must not contain the NUL character")
    for name, info in model.model_fields.items():
        key = info.alias or name
        values = request.args.getlist(key)
        if not values:
            continue
        origin = getattr(info.annotation, "__origin__", None)
        args[key] = values if origin in (list, tuple) else values[-1]
    return args


def endpoint(
    *,
    body: Any = None,
    body_required: bool = True,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    problems: Sequence[int] = (),
    public: bool = False,
    accepted: Any = None,
    body_limit: str = "MAX_BODY_BYTES",
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Validate ``body`` (JSON; may be omitted when not ``body_required``) and ``query`` (URL arguments),
    pass them to the view as ``body=`` and ``query=``, and render its result.

    ``accepted`` documents the 202 answer (an ``Accepted`` return) a view may give instead of ``status``.
    ``body_limit`` names the app config key of the largest body the operation reads (default
    ``MAX_BODY_BYTES``); a larger one is answered 413 before it is read.
    """
    body_adapter = TypeAdapter(body) if body is not None else None

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        doc = (view.__doc__ or view.__name__).strip()
        summary, _, description = doc.partition("\n")
        spec = EndpointSpec(
            summary=summary.strip(),
            description=description.strip(),
            body=body,
            body_required=body_required,
            query=query,
            response=response,
            status=status,
            problems=tuple(problems),
            public=public,
            accepted=accepted,
            body_limit=body_limit,
        )

        @wraps(view)
        def wrapper(**kwargs: Any) -> Response:
            if body_adapter is not None:
                payload = _json_body(body_required)
                try:
                    kwargs["body"] = body_adapter.validate_python(payload)
                except ValidationError as error:
                    tag = payload.get("type") if isinstance(payload, dict) else None
                    raise validation_problem(error, union_tag=tag if isinstance(tag, str) else None) from None
            if query is not None:
                try:
                    kwargs["query"] = query.model_validate(_query_args(query))
                except ValidationError as error:
                    raise validation_problem(error, prefix=("query",)) from None
            return _render(view(**kwargs), status)

        wrapper.endpoint_spec = spec  # type: ignore[attr-defined]
        return wrapper

    return decorate


def record_views(
    bp: Blueprint,
    records: Any,
    response: type[BaseModel],
    out: Callable[[Any], BaseModel],
    *,
    id_arg: str,
    list_view: tuple[str, str],
    get_view: tuple[str, str],
) -> None:
    """Register the list (``GET ""``, a page) and get (``GET /<id_arg>``) views of one organization's
    stored records on ``bp``: exports, integrations and webhooks answer both the same way.

    ``records`` has ``list(session, organization_id, page)`` and ``get(session, organization_id, id)``
    (``api.services.connected_records.ConnectedRecords``); ``out`` maps a record to ``response``.
    ``list_view`` and ``get_view`` are each view's (name, docstring): the names are the endpoints
    (``url_for(".get_export")``) and the docstrings the OpenAPI summaries.

    Example:
        ``record_views(bp, exports, ExportOut, export_out, id_arg="export_id",
        list_view=("list_exports", "List all exports."), get_view=("get_export", "Get an export."))``
    """
    def list_records(organization_id: str, query: PageQuery) -> BaseModel:
        rows, cursor = records.list(db(), organization_id, query)
        return Page[response](items=[out(row) for row in rows], next_cursor=cursor)

    def get_record(organization_id: str, **ids: str) -> BaseModel:
        return out(records.get(db(), organization_id, ids[id_arg]))

    list_records.__name__, list_records.__doc__ = list_view
    get_record.__name__, get_record.__doc__ = get_view
    bp.get("")(endpoint(query=PageQuery, response=Page[response], problems=(401, 404, 422))(list_records))
    bp.get(f"/<{id_arg}>")(endpoint(response=response, problems=(401, 404))(get_record))
