"""Building blocks shared by the resource schemas."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Generic, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from blocks.egress import UnsafeUrl, check_url

MASK = "********"

T = TypeVar("T")


class StrictModel(BaseModel):
    """Unknown fields are an error: a secret put in the wrong place must not end up in a database row."""

    model_config = ConfigDict(extra="forbid")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; use the credentials (or headers) field")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise ValueError(f"has an invalid port: {error}") from None
    return value


def serialised_at_most(limit: int) -> tuple[Any, ...]:
    """``Annotated`` metadata: the value, serialised as compact UTF-8 JSON, takes at most ``limit`` bytes.

    Bounds fields whose values are any JSON (event data, predictions, a service account key), where
    no per-string or per-list maximum applies; the OpenAPI document shows it as ``x-max-bytes``.

    Example:
        ``data: Annotated[dict[str, Any], *serialised_at_most(256 * 1024)]``
    """

    def check(value: T) -> T:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())
        if size > limit:
            raise ValueError(f"must take at most {limit:,} bytes serialised as JSON (takes {size:,})")
        return value

    return AfterValidator(check), Field(json_schema_extra={"x-max-bytes": limit})


DATETIME_MAX_LENGTH = 64


def _short_datetime_text(value: Any) -> Any:
    # A datetime arrives as text; bound it like every other string before parsing it.
    if isinstance(value, str) and len(value) > DATETIME_MAX_LENGTH:
        raise ValueError(f"must be an RFC 3339 date-time of at most {DATETIME_MAX_LENGTH} characters")
    return value


DATETIME_TEXT = (
    BeforeValidator(_short_datetime_text),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": DATETIME_MAX_LENGTH}),
)
"""``Annotated`` metadata for a datetime field: at most 64 characters of RFC 3339, shown in the schema."""
Timestamp = Annotated[datetime, *DATETIME_TEXT]

HttpURL = Annotated[str, Field(min_length=8, max_length=2048), AfterValidator(_http_url)]


def reachable(url: str) -> str:
    """``url`` unless the egress policy refuses the addresses its host resolves to (a 422 naming the
    field, before anything connects; every connection is checked again at connect time)."""
    try:
        check_url(url)
    except UnsafeUrl as error:
        raise ValueError(str(error)) from None
    return url


OutboundURL = Annotated[HttpURL, AfterValidator(reachable)]
"""A URL ModelPulse connects to (a sink, a registry, a webhook): an ``HttpURL`` the egress policy allows."""
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
ProjectId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
SecretText = Annotated[str, Field(min_length=1, max_length=10_000, json_schema_extra={"writeOnly": True})]


class PageQuery(StrictModel):
    limit: int = Field(default=50, ge=1, le=500, description="Items per page (max 500).")
    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor` of the previous page.")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class RecordOut(BaseModel):
    id: str
    organization_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: Any, **computed: Any) -> Self:
        """The answer for a stored record: each field is the record's attribute of that name, unless
        ``computed`` gives it (masked secrets, values derived from several columns).

        Example:
            ``ExportOut.of(export, credentials=masked(export.secret_fields))``
        """
        return cls(**{name: computed[name] if name in computed else getattr(record, name) for name in cls.model_fields})


def masked(fields: list[str]) -> dict[str, str]:
    return {name: MASK for name in fields}


def optional_fields(model: type[StrictModel]) -> type[StrictModel]:
    """The same model with every field optional (a PUT may omit a stored secret or send the mask)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        # Keep each field's constraints (maximum length, validators) and description: optional, not unbounded.
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        field = Field(default=None, description=info.description, json_schema_extra=info.json_schema_extra)
        fields[name] = (annotation | None, field)
    return create_model(f"{model.__name__}Update", __base__=StrictModel, **fields)
