"""Monitoring bodies: inference logs, drift checks and metrics, monitors, thresholds, recommendations."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.common import DATETIME_TEXT, PageQuery, ProjectId, StrictModel, serialised_at_most
from api.schemas.exports import Schedule
from store.event_catalog import Severity
from tasks.drift.methods import REQUESTABLE_METHODS
from tasks.monitoring.thresholds import METRICS

MAX_RECORDS = 10_000
MAX_FEATURES = 1000
MAX_VALUE_BYTES = 64 * 1024  # a prediction or label: room for an embedding or a class distribution


def _no_nul(value: str) -> str:
    # PostgreSQL text and JSONB cannot hold U+0000; refuse it here rather than fail at INSERT.
    if "\x00" in value:
        raise ValueError("must not contain U+0000")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the supported range of dates") from None


ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$"), AfterValidator(_no_nul)]
ModelVersion = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
FeatureName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
RequestId = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
UtcDatetime = Annotated[AwareDatetime, *DATETIME_TEXT, AfterValidator(_utc)]
Method = Literal["ks", "psi", "js", "auto"]
assert set(Method.__args__) == set(REQUESTABLE_METHODS)  # type: ignore[attr-defined]
Metric = Literal[METRICS]  # type: ignore[valid-type]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _finite_number(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _valid_feature_value(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return "\x00" not in value
    return isinstance(value, (int, float)) and _finite_number(value)


def _valid_json(value: Any) -> bool:
    """A JSON value the database can store: no U+0000 in strings, numbers within the float range."""
    if isinstance(value, dict):
        return all("\x00" not in key and _valid_json(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_valid_json(item) for item in value)
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite_number(value)
    return True


class InferenceRecordIn(StrictModel):
    model: ModelName
    model_version: ModelVersion | None = None
    project_id: ProjectId | None = None
    timestamp: UtcDatetime | None = Field(default=None, description="RFC 3339 with offset; default: now.")
    request_id: RequestId | None = None
    features: dict[FeatureName, Any] = Field(
        max_length=MAX_FEATURES, description="name -> number | string | boolean | null; at most 1,000 features."
    )
    prediction: Annotated[Any, *serialised_at_most(MAX_VALUE_BYTES)] = Field(
        description="Any JSON value (at most 64 KiB serialised); numeric or boolean ones feed `prediction.mean`."
    )
    label: Annotated[Any, *serialised_at_most(MAX_VALUE_BYTES)] = Field(
        default=None, description="Any JSON value, at most 64 KiB serialised."
    )
    latency_ms: FiniteFloat | None = Field(default=None, ge=0)

    @field_validator("features")
    @classmethod
    def _flat_features(cls, features: dict[str, Any]) -> dict[str, Any]:
        # One message naming the feature, rather than one error per member of a union type.
        bad = [name for name, value in features.items() if not _valid_feature_value(value)]
        if bad:
            raise ValueError(f"values must be a finite number, a string, a boolean or null: {', '.join(bad[:5])}")
        return features

    @field_validator("prediction")
    @classmethod
    def _prediction_present(cls, prediction: Any) -> Any:
        if prediction is None:
            raise ValueError("a prediction is required")
        if not _valid_json(prediction):
            raise ValueError("numbers must be finite and strings must not contain U+0000")
        return prediction

    @field_validator("label")
    @classmethod
    def _storable_label(cls, label: Any) -> Any:
        if not _valid_json(label):
            raise ValueError("numbers must be finite and strings must not contain U+0000")
        return label


class InferenceLogsIn(StrictModel):
    records: list[InferenceRecordIn] = Field(min_length=1, max_length=MAX_RECORDS)


class InferenceLogsAccepted(BaseModel):
    """How many records of a ``POST .../inference-logs`` batch were stored."""

    accepted: int


class InferenceLogOut(BaseModel):
    id: int
    organization_id: str
    project_id: str | None
    model: str
    model_version: str | None
    timestamp: datetime
    request_id: str | None
    features: dict[str, Any]
    prediction: Any
    label: Any
    latency_ms: float | None
    ingested_at: datetime


class TimeRangeQuery(PageQuery):
    from_: UtcDatetime | None = Field(default=None, alias="from", description="Inclusive start (RFC 3339).")
    to: UtcDatetime | None = Field(default=None, description="Exclusive end (RFC 3339).")


class InferenceLogQuery(TimeRangeQuery):
    model: ModelName | None = None
    model_version: ModelVersion | None = None
    project_id: ProjectId | None = None


class Window(StrictModel):
    """A half-open time window ``[from, to)``."""

    from_: UtcDatetime = Field(alias="from")
    to: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        return self


class WindowOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    from_: datetime = Field(serialization_alias="from")
    to: datetime


class DriftCheckIn(StrictModel):
    model: ModelName
    model_version: ModelVersion | None = None
    reference: Window
    current: Window
    method: Method = Field(default="auto", description="`auto` picks per feature as Evidently does.")
    threshold: FiniteFloat | None = Field(
        default=None, gt=0, description="p-value cut-off for tests (ks, chi-square, z), distance otherwise."
    )
    features: list[FeatureName] | None = Field(default=None, min_length=1, max_length=MAX_FEATURES)


class FeatureDriftOut(BaseModel):
    feature: str
    method: str
    value: float
    threshold: float
    drifted: bool
    p_value: float | None = None


class DriftCheckOut(BaseModel):
    id: str
    organization_id: str
    model: str
    model_version: str | None
    method: str
    threshold: float | None
    status: str
    status_detail: str | None
    reference: WindowOut
    current: WindowOut
    reference_count: int | None
    current_count: int | None
    monitor_id: str | None
    features: list[FeatureDriftOut]
    drifted: bool
    created_at: datetime
    completed_at: datetime | None


class DriftCheckQuery(PageQuery):
    model: ModelName | None = None


class DriftMetricOut(BaseModel):
    id: int
    organization_id: str
    project_id: str | None
    check_id: str | None
    model: str
    model_version: str | None
    feature: str
    method: str
    value: float
    threshold: float
    drifted: bool
    p_value: float | None
    reference: WindowOut
    current: WindowOut
    computed_at: datetime


class DriftMetricQuery(TimeRangeQuery):
    model: ModelName | None = None
    feature: FeatureName | None = None


class MonitorIn(StrictModel):
    model_version: ModelVersion | None = None
    reference: Window
    window_seconds: int = Field(ge=60, le=90 * 86400, description="Length of the current window, ending at run time.")
    method: Method = "auto"
    threshold: FiniteFloat | None = Field(default=None, gt=0)
    features: list[FeatureName] | None = Field(default=None, min_length=1, max_length=MAX_FEATURES)
    schedule: Schedule
    enabled: bool = True


class MonitorOut(BaseModel):
    id: str
    organization_id: str
    model: str
    model_version: str | None
    reference: WindowOut
    window_seconds: int
    method: str
    threshold: float | None
    features: list[str] | None
    schedule: dict[str, Any]
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_check_id: str | None
    drift_episode_event_id: str | None = Field(
        description="The drift.detected event that opened the drift episode in progress (null: none)."
    )
    created_at: datetime
    updated_at: datetime


class ThresholdIn(StrictModel):
    model: ModelName | None = Field(default=None, description="Null: every model of the organization.")
    metric: Metric
    operator: Literal[">", ">=", "<", "<="]
    value: FiniteFloat
    window_seconds: int | None = Field(
        default=None, ge=60, le=31 * 86400, description="Log metrics only; default 3600."
    )
    severity: Severity = Field(
        default="error",
        description="Carried by threshold.breached; the severity Slack, Teams and PagerDuty show (unless the "
        "webhook's config.severity overrides it).",
    )
    project_id: ProjectId | None = None
    enabled: bool = True


class ThresholdStateOut(BaseModel):
    model: str
    breached: bool
    episode_started_at: datetime | None
    episode_event_id: str | None = Field(description="The threshold.breached event of the episode in progress.")
    consecutive_breaches: int
    last_value: float | None
    last_evaluated_at: datetime | None


class ThresholdOut(BaseModel):
    id: str
    organization_id: str
    project_id: str | None
    model: str | None
    metric: str
    operator: str
    value: float
    window_seconds: int | None
    severity: str
    enabled: bool
    states: list[ThresholdStateOut]
    created_at: datetime
    updated_at: datetime


class RecommendationOut(BaseModel):
    id: str
    organization_id: str
    model: str
    kind: str
    reason: str
    details: dict[str, Any]
    status: str
    created_at: datetime
    dismissed_at: datetime | None


class RecommendationQuery(PageQuery):
    model: ModelName | None = None
    kind: Literal["retrain", "scale_endpoint", "add_monitor"] | None = None
    status: Literal["open", "dismissed"] | None = None
