"""Remediation bodies: a Prefect deployment run when an event of the organization matches."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from api.schemas.common import Name, RecordOut, StrictModel, serialised_at_most
from api.schemas.webhooks import FILTER_MAX_BYTES, EventType, check_filter
from store.event_filters import MAX_CONDITIONS, MAX_DEPTH

PARAMETERS_MAX_BYTES = 64 * 1024


def _not_path_steps(name: str) -> str:
    if any(part in (".", "..") for part in name.split("/")):
        raise ValueError('a flow or deployment name cannot be "." or ".."')
    return name


# "<flow name>/<deployment name>", as `prefect deployment run` takes it.
DeploymentName = Annotated[
    str,
    Field(
        min_length=3,
        max_length=400,
        # Prefect's names never hold / % & < > (nor control characters); "." and ".." would be path steps.
        pattern=r"^[^/%&<>\x00-\x1f\x7f]+/[^/%&<>\x00-\x1f\x7f]+$",
        description='The Prefect deployment to run, "<flow name>/<deployment name>"; it must exist (422 otherwise).',
        examples=["retrain/retrain-on-drift"],
    ),
    AfterValidator(_not_path_steps),
]

ON_FILTER_DESCRIPTION = (
    "Which events of `type` start the deployment; null or omitted: every one. The webhook filter language "
    "(README, Filters): dotted paths (`project_id`, `data.<field>`) to a value or an operator object "
    "(`$eq` `$ne` `$in` `$nin` `$gt` `$gte` `$lt` `$lte` `$exists` `$glob`), `$or` / `$and`. Checked against "
    f"the type's catalog entry: a 422 names `on.filter.<path>`. At most {MAX_CONDITIONS} conditions, nested "
    f"{MAX_DEPTH} deep, {FILTER_MAX_BYTES // 1024} KiB as JSON."
)
PARAMETERS_DESCRIPTION = (
    "The flow run's parameters. A string holding Jinja (`{{ ... }}`, `{% ... %}`) is rendered by Prefect's "
    "automation from the triggering event, whose `payload` is the ModelPulse event as webhooks receive it: "
    '`"model": "{{ event.payload.data.model }}"`. Values Prefect already templates (`{"__prefect_kind": ...}`) '
    "are passed as they are. Each name must be a parameter of the deployment's flow, and every required "
    f"parameter without a default in the deployment given. At most {PARAMETERS_MAX_BYTES // 1024} KiB as JSON."
)


class RemediationOn(StrictModel):
    type: EventType = Field(description="The event type that starts it (GET .../event-types).")
    filter: Annotated[dict[str, Any], *serialised_at_most(FILTER_MAX_BYTES)] | None = Field(
        default=None,
        description=ON_FILTER_DESCRIPTION,
        json_schema_extra={"examples": [{"data.model": {"$glob": "fraud-*"}, "data.severity": {"$gte": "error"}}]},
    )


class RemediationIn(StrictModel):
    name: Name
    on: RemediationOn
    deployment: DeploymentName
    parameters: Annotated[dict[str, Any], *serialised_at_most(PARAMETERS_MAX_BYTES)] = Field(
        default_factory=dict,
        description=PARAMETERS_DESCRIPTION,
        json_schema_extra={"examples": [{"model": "{{ event.payload.data.model }}", "reason": "drift"}]},
    )

    @model_validator(mode="after")
    def _filter_fits_the_type(self) -> Self:
        # Located at its place in the filter: on.filter.data.model, on.filter.$or[1].project_id.
        if self.on.filter is not None:
            check_filter(type(self).__name__, self.on.filter, [self.on.type], ("on", "filter"))
        return self


class RemediationOut(RecordOut):
    name: str
    on: RemediationOn
    deployment: str
    parameters: dict[str, Any] = Field(description="As given (templates unrendered).")
    automation_id: str = Field(description="The Prefect automation that runs the deployment.")


class RemediationRunOut(BaseModel):
    id: str = Field(description="The Prefect flow run's id.")
    name: str
    state: str | None = Field(description="The state's type: SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED...")
    state_name: str | None = Field(description="The state's name (Late, Retrying, ...).")
    parameters: dict[str, Any] = Field(description="The parameters the run got (templates rendered).")
    deployment_id: str | None
    created_at: datetime | None
    start_time: datetime | None
    end_time: datetime | None
