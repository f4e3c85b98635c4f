"""Export bodies: one model per sink type, chosen by ``type``; streams and schedule are shared."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator

from api.schemas.common import Name, OutboundURL, ProjectId, RecordOut, SecretText, StrictModel, optional_fields

Stream = Literal["inference_logs", "drift_metrics", "events"]
STREAMS: tuple[str, ...] = Stream.__args__  # type: ignore[attr-defined]
IndexName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[a-z0-9][a-z0-9._+-]*$",
        description="Lower-case Elasticsearch index or data stream name.",
    ),
]


class IntervalSchedule(StrictModel):
    interval_seconds: int = Field(ge=60, le=31 * 86400)


class CronSchedule(StrictModel):
    cron: str = Field(min_length=9, max_length=200, description="Five-field cron, e.g. '*/15 * * * *'.")
    timezone: str = Field(default="UTC", max_length=64)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from datetime import datetime

        try:
            CronSim(value, datetime.now(UTC))
        except (CronSimError, ValueError) as error:
            raise ValueError(f"not a valid cron expression: {error}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


Schedule = IntervalSchedule | CronSchedule


class ElasticsearchIndices(StrictModel):
    inference_logs: IndexName = "modelpulse-inference-logs"
    drift_metrics: IndexName = "modelpulse-drift-metrics"
    events: IndexName = "modelpulse-events"


class SinkConfig(StrictModel):
    page_size: int = Field(
        default=5000,
        ge=100,
        le=50_000,
        description="Records read, shipped and acknowledged (watermark moved) at a time; each sink "
        "splits a page into requests within its own limits.",
    )
    concurrency: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Pages in flight to the sink at once: the next pages are read and encoded while "
        "earlier ones are sent. Watermarks still move in order, one page after another.",
    )


ElasticsearchMode = Literal["index", "data_stream"]


class ElasticsearchConfig(SinkConfig):
    url: OutboundURL
    verify_ssl: bool = True
    mode: ElasticsearchMode = Field(
        default="data_stream",
        description="`data_stream`: `create` operations into data streams (never overwrite; a re-shipped "
        "record answers 409, counted as shipped). `index`: `index` operations with `_id` = the record id "
        "(a re-shipped record overwrites itself). Exports stored before modes existed use `index`.",
    )
    indices: ElasticsearchIndices = Field(
        default_factory=ElasticsearchIndices, description="The index or data stream each stream goes to."
    )
    manage_templates: bool = Field(
        default=True,
        description="Install a composable index template per stream (explicit ECS and `modelpulse.*` "
        "mappings) and, with data streams, an ILM policy: on create, update, `/test` and before a run's "
        "first page. False: install nothing (the cluster's own templates apply).",
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        le=36_500,
        description="Data streams with managed templates: the ILM policy deletes a backing index this many "
        "days after it rolled over.",
    )


class ElasticsearchConfigUpdate(ElasticsearchConfig):
    mode: ElasticsearchMode = Field(  # type: ignore[assignment]
        default=None,
        description="Omitted: the export keeps its stored mode (`index` for an export stored before modes "
        "existed); an update never switches an export's mode by itself.",
    )


class ElasticsearchCredentials(StrictModel):
    username: SecretText
    password: SecretText


class SplunkConfig(SinkConfig):
    hec_url: OutboundURL = Field(description="e.g. https://splunk.example.com:8088")
    verify_ssl: bool = True
    index: str | None = Field(default=None, max_length=80)
    source: str | None = Field(default=None, max_length=200)
    indexer_ack: bool = Field(
        default=False,
        description="Move the watermark only once Splunk confirms the events indexed (HEC indexer "
        "acknowledgement: a data channel per export, ackIds polled on /services/collector/ack). "
        "The HEC token must have indexer acknowledgement enabled; a token that has it enabled "
        "needs this set to true.",
    )
    ack_timeout_seconds: float = Field(
        default=300,
        ge=1,
        le=3600,
        description="With indexer_ack: how long to wait for a batch's acknowledgement before "
        "re-sending it (re-sent events may then be indexed twice; searches drop duplicates by "
        "the modelpulse.id field).",
    )


class SplunkCredentials(StrictModel):
    hec_token: SecretText


class DatadogConfig(SinkConfig):
    site: str = Field(
        default="datadoghq.com",
        max_length=253,
        pattern=r"^([a-z0-9-]+\.)*(datadoghq\.com|datadoghq\.eu|ddog-gov\.com)$",
        description="The Datadog site: datadoghq.com, us3/us5/ap1.datadoghq.com, datadoghq.eu, ddog-gov.com.",
    )
    api_url: OutboundURL | None = Field(default=None, description="Send every request here (a proxy).")


class DatadogCredentials(StrictModel):
    api_key: SecretText
    app_key: SecretText


class _ExportBase(StrictModel):
    name: Name
    project_id: ProjectId | None = None
    streams: list[Stream] = Field(
        default_factory=lambda: ["inference_logs", "drift_metrics"], min_length=1, max_length=len(STREAMS)
    )
    schedule: Schedule | None = None
    enabled: bool = True

    @field_validator("streams")
    @classmethod
    def _no_repeats(cls, streams: list[str]) -> list[str]:
        if len(set(streams)) != len(streams):
            raise ValueError("each stream may appear once")
        return streams


class ElasticsearchExport(_ExportBase):
    type: Literal["elasticsearch"]
    config: ElasticsearchConfig
    credentials: ElasticsearchCredentials


class SplunkExport(_ExportBase):
    type: Literal["splunk"]
    config: SplunkConfig
    credentials: SplunkCredentials


class DatadogExport(_ExportBase):
    type: Literal["datadog"]
    config: DatadogConfig = Field(default_factory=DatadogConfig)
    credentials: DatadogCredentials


ExportIn = Annotated[ElasticsearchExport | SplunkExport | DatadogExport, Field(discriminator="type")]


class ElasticsearchExportUpdate(ElasticsearchExport):
    config: ElasticsearchConfigUpdate
    credentials: optional_fields(ElasticsearchCredentials) = None  # type: ignore[valid-type]

    def keeping_mode(self, stored_type: str, stored_config: dict[str, Any]) -> ElasticsearchExportUpdate:
        """This update with an omitted ``config.mode`` set to the stored export's: its stored mode,
        ``index`` if it was stored before modes existed, the create default if it was not an
        Elasticsearch export."""
        if self.config.mode is not None:
            return self
        if stored_type == "elasticsearch":
            mode = stored_config.get("mode") or "index"
        else:
            mode = ElasticsearchConfig.model_fields["mode"].default
        return self.model_copy(update={"config": self.config.model_copy(update={"mode": mode})})


class SplunkExportUpdate(SplunkExport):
    credentials: optional_fields(SplunkCredentials) = None  # type: ignore[valid-type]


class DatadogExportUpdate(DatadogExport):
    credentials: optional_fields(DatadogCredentials) = None  # type: ignore[valid-type]


ExportUpdate = Annotated[
    ElasticsearchExportUpdate | SplunkExportUpdate | DatadogExportUpdate, Field(discriminator="type")
]


class ExportOut(RecordOut):
    name: str
    type: str
    project_id: str | None
    config: dict[str, Any]
    credentials: dict[str, str] = Field(description='Each stored secret as "********".')
    streams: list[str]
    schedule: dict[str, Any] | None
    enabled: bool
    status: str
    status_detail: str | None
