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

from flask import Response, json, request
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.errors import Unprocessable, field_path, validation_problem


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


def _nul_path(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where a NUL character hides in a JSON document (no database column can store one)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return (*path, key)
        found = _nul_path(item, (*path, key))
        if found is not None:
            return found
    return None


def _json_body(required: bool) -> Any:
    raw = request.get_data()
    if not raw and not required:
        return {}  # an omitted optional body means every field's default
    if not raw:
        raise Unprocessable.field("body", "a JSON request body is required")
    payload = request.get_json(force=True, silent=True)
    if payload is None:
        raise Unprocessable.field("body", "the request body is not valid JSON")
    if b"\\u0000" in raw:  # JSON can only carry NUL escaped, so the walk is rarely needed
        location = _nul_path(payload)
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
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Validate ``body`` (JSON; may be omitted when not ``body_required``) and ``query`` (URL arguments),
    pass them to the view as ``body=`` and ``query=``, and render its result.

    ``accepted`` documents the 202 answer (an ``Accepted`` return) a view may give instead of ``status``.
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
