"""Silence bodies: matchers (a webhook filter), the time window, who made it and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from api.schemas.common import PageQuery, RecordOut, StrictModel, serialised_at_most
from api.schemas.monitoring import UtcDatetime
from store.event_filters import MAX_CONDITIONS, MAX_DEPTH
from store.models import utcnow
from store.silences import SilenceState, matchers_problems

MATCHERS_MAX_BYTES = 16 * 1024
MATCHERS_DESCRIPTION = (
    "Which events the silence holds back: a webhook filter (see a webhook's `filter`): dotted paths of the "
    "event (`type`, `project_id`, `data.<field>`) to a value or an operator object (`$eq` `$ne` `$in` `$nin` "
    "`$gt` `$gte` `$lt` `$lte` `$exists` `$glob`), ANDed, with `$or` / `$and`. It covers every publishable "
    "event type, unless it names `type` (a value, `$eq` or `$in`): then those. Checked against their catalog "
    f"entries: a 422 names `matchers.<path>`. At least one condition, at most {MAX_CONDITIONS}, nested "
    f"{MAX_DEPTH} deep, {MATCHERS_MAX_BYTES // 1024} KiB as JSON."
)
MATCHERS_EXAMPLE = {"data.model": {"$glob": "fraud-*"}, "project_id": "payments"}
Comment = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00]*\S[^\x00]*$")]
Actor = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00\s]([^\x00]*[^\x00\s])?$")]


class SilenceIn(StrictModel):
    matchers: Annotated[dict[str, Any], *serialised_at_most(MATCHERS_MAX_BYTES)] = Field(
        description=MATCHERS_DESCRIPTION, json_schema_extra={"examples": [MATCHERS_EXAMPLE]}
    )
    starts_at: UtcDatetime | None = Field(
        default=None,
        description="When it begins (RFC 3339 with a time zone); default, or a time already past: now. A "
        "silence never holds back an event that happened before it was made.",
    )
    ends_at: UtcDatetime = Field(description="When it ends (RFC 3339 with a time zone): later than now and starts_at.")
    comment: Comment = Field(description="Why (a maintenance, an incident); 1-1000 characters.")
    created_by: Actor = Field(description="Who made it (a name or an address); 1-200 characters.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        # After the fields: each problem located where it is (matchers.data.model, ends_at).
        problems: list[tuple[tuple[str | int, ...], str]] = [
            (("matchers", *location), message) for location, message in matchers_problems(self.matchers)
        ]
        now = utcnow()
        if self.ends_at <= now:
            problems.append((("ends_at",), "must be in the future"))
        elif self.starts_at is not None and self.starts_at >= self.ends_at:
            problems.append((("ends_at",), "must be later than starts_at"))
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("silence_invalid", "{reason}", {"reason": message}),
                        loc=location,
                        input=self.matchers if location[0] == "matchers" else str(getattr(self, str(location[0]))),
                    )
                    for location, message in problems
                ],
            ) from None
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``starts_at`` (now, if left out or already past) and ``ends_at``."""
        return max(self.starts_at or now, now), self.ends_at


class SilenceOut(RecordOut):
    matchers: dict[str, Any] = Field(description="As given.")
    starts_at: datetime
    ends_at: datetime = Field(description="An expired silence's end (now, when it was expired by DELETE).")
    comment: str
    created_by: str
    state: SilenceState = Field(
        description="`pending` (starts_at not yet reached), `active`, or `expired` (ends_at passed)."
    )


class SilencesQuery(PageQuery):
    state: SilenceState | None = Field(default=None, description="Only silences in this state now.")
