"""Building blocks shared by the resource schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

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


HttpURL = Annotated[str, Field(min_length=8, max_length=2048), AfterValidator(_http_url)]
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


def masked(fields: list[str]) -> dict[str, str]:
    return {name: MASK for name in fields}


def optional_fields(model: type[StrictModel]) -> type[StrictModel]:
    """The same model with every field optional (a PUT may omit a stored secret or send the mask)."""
    fields: dict[str, Any] = {
        name: (info.annotation | None, None) for name, info in model.model_fields.items()
    }
    return create_model(f"{model.__name__}Update", __base__=StrictModel, **fields)
