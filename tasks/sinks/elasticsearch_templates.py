"""Elasticsearch index templates and ILM policies: what ModelPulse installs for each stream, and when.

A composable index template per stream (explicit ECS and ``modelpulse.*`` mappings; with data streams,
``data_stream: {}`` and an ILM policy of ``config.retention_days``) is installed before the first page
a process ships to that stream (``ensure_templates``), and on create of the export and on ``/test``
(``install_templates_now``), unless ``config.manage_templates`` is false.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from blocks.elasticsearch import ElasticsearchConnection
from tasks.sinks.base import BUSY_STATUSES, CredentialsRejected, ExportTarget, SinkMisconfigured, SinkUnavailable
from tasks.sinks.records import DATASETS
from tasks.upstream_errors import body_summary

LEGACY_MODE = "index"  # a stored config without ``mode`` predates data streams
DEFAULT_RETENTION_DAYS = 30
# Above Elasticsearch's built-in templates (``logs-*-*``, ``metrics-*-*``: priority 100), which
# would otherwise tie with or beat ours for names such as ``logs-modelpulse-default``.
TEMPLATE_PRIORITY = 200
DATA_STREAM_TYPES = {"inference_logs": "logs", "drift_metrics": "metrics", "events": "logs"}

_installed_templates: set[tuple[Any, ...]] = set()
_templates_lock = threading.Lock()


@dataclass(frozen=True)
class Settings:
    """The Elasticsearch part of an export's config, with the defaults of stored configs applied."""

    mode: str
    manage_templates: bool
    retention_days: int

    @classmethod
    def of(cls, target: ExportTarget) -> Settings:
        config = target.config
        return cls(
            mode=config.get("mode") or LEGACY_MODE,
            manage_templates=config.get("manage_templates", True),
            retention_days=int(config.get("retention_days") or DEFAULT_RETENTION_DAYS),
        )

    @property
    def data_streams(self) -> bool:
        return self.mode == "data_stream"


_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_DOUBLE = {"type": "double"}
_DATE = {"type": "date"}
_RANGE = {"properties": {"from": _DATE, "to": _DATE}}
_STREAM_FIELDS: dict[str, dict[str, Any]] = {
    "inference_logs": {
        "model": _KEYWORD,
        "model_version": _KEYWORD,
        "request_id": _KEYWORD,
        # Flat name -> number | string | boolean; each feature's type is learnt from its first value.
        "features": {"type": "object", "dynamic": True},
        # prediction and label are any JSON (a number, a class, a distribution): mapped from the
        # first value seen, since declaring them objects would refuse every scalar prediction.
        "latency_ms": _DOUBLE,
        "ingested_at": _DATE,
    },
    "drift_metrics": {
        "check_id": _KEYWORD,
        "model": _KEYWORD,
        "model_version": _KEYWORD,
        "feature": _KEYWORD,
        "method": _KEYWORD,
        "value": _DOUBLE,
        "threshold": _DOUBLE,
        "p_value": _DOUBLE,
        "drifted": {"type": "boolean"},
        "reference": _RANGE,
        "current": _RANGE,
    },
    "events": {
        "event_type": _KEYWORD,
        "data": {"type": "object", "dynamic": True},
    },
}


def template_mappings(stream: str, data_streams: bool) -> dict[str, Any]:
    """Explicit mappings: ECS fields where ECS has them, ModelPulse's own under ``modelpulse.*``."""
    properties: dict[str, Any] = {
        "@timestamp": _DATE,
        "event": {"properties": {"dataset": _KEYWORD, "kind": _KEYWORD}},
        "service": {"properties": {"name": _KEYWORD}},
        "labels": {"type": "object", "dynamic": True},
        "modelpulse": {
            "properties": {
                "id": _KEYWORD,
                "organization_id": _KEYWORD,
                "project_id": _KEYWORD,
                **_STREAM_FIELDS[stream],
            }
        },
    }
    if data_streams:
        # ECS data_stream.* as constant_keyword with their values set here: every document of the
        # stream has them for queries and Kibana, without carrying them over the wire.
        properties["data_stream"] = {
            "properties": {
                "type": {"type": "constant_keyword", "value": DATA_STREAM_TYPES[stream]},
                "dataset": {"type": "constant_keyword", "value": DATASETS[stream]},
                "namespace": {"type": "constant_keyword", "value": "default"},
            }
        }
    return {
        # A feature value that looks like a date must not turn the field into a date, which would
        # then refuse the next ordinary string.
        "date_detection": False,
        "dynamic_templates": [
            {"labels_as_keywords": {"path_match": "labels.*", "mapping": {"type": "keyword"}}},
            {"strings_as_keywords": {"match_mapping_type": "string", "mapping": _KEYWORD}},
        ],
        "properties": properties,
    }


def lifecycle_policy(retention_days: int) -> dict[str, Any]:
    """ILM: roll the write index over daily to monthly (a tenth of the retention), delete it
    ``retention_days`` after its rollover. Documents live between ``retention_days`` and
    ``retention_days`` plus one rollover period."""
    rollover_days = min(30, max(1, retention_days // 10))
    return {
        "phases": {
            "hot": {
                "min_age": "0ms",
                "actions": {"rollover": {"max_age": f"{rollover_days}d", "max_primary_shard_size": "50gb"}},
            },
            "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}},
        },
        "_meta": {"managed_by": "modelpulse"},
    }


def index_template(name: str, stream: str, settings: Settings) -> dict[str, Any]:
    """The composable index template for one stream's index or data stream ``name``."""
    template: dict[str, Any] = {"mappings": template_mappings(stream, settings.data_streams)}
    body: dict[str, Any] = {
        "index_patterns": [name],
        "priority": TEMPLATE_PRIORITY,
        "template": template,
        "_meta": {"managed_by": "modelpulse", "stream": stream},
    }
    if settings.data_streams:
        template["settings"] = {"index.lifecycle.name": name}
        body["data_stream"] = {}
    return body


def install_templates(client: Elasticsearch, name: str, stream: str, settings: Settings) -> None:
    """PUT the stream's ILM policy (data streams) and index template; both are idempotent.

    Raises:
        CredentialsRejected: 401.
        SinkMisconfigured: Elasticsearch refused them (400, or 403: privileges missing).
        SinkUnavailable: 429/5xx.
    """
    try:
        if settings.data_streams:
            client.ilm.put_lifecycle(name=name, policy=lifecycle_policy(settings.retention_days))
        body = index_template(name, stream, settings)
        client.indices.put_index_template(
            name=name,
            index_patterns=body["index_patterns"],
            priority=body["priority"],
            template=body["template"],
            data_stream=body.get("data_stream"),
            meta=body["_meta"],
        )
    except ApiError as error:
        status = error.status_code
        reason = body_summary("elasticsearch", error.body)
        if status == 401:
            raise CredentialsRejected(f"Elasticsearch rejected the credentials (401): {reason}") from None
        if status == 403:
            raise SinkMisconfigured(
                f"Elasticsearch refused to install the template for {name!r} (403: {reason}); the user "
                "needs the manage_index_templates and manage_ilm cluster privileges, or set "
                "config.manage_templates to false and install templates yourself"
            ) from None
        if status in BUSY_STATUSES:
            raise SinkUnavailable(f"Elasticsearch answered {status} to the template for {name!r}: {reason}") from None
        raise SinkMisconfigured(f"Elasticsearch refused the template for {name!r} ({status}): {reason}") from None


def _template_key(connection: ElasticsearchConnection, name: str, stream: str, settings: Settings) -> tuple:
    return (connection.url, name, stream, settings.mode, settings.retention_days)


def ensure_templates(
    connection: ElasticsearchConnection, client: Elasticsearch, name: str, stream: str, settings: Settings
) -> None:
    """Install the stream's templates once per process (and whenever their settings change)."""
    key = _template_key(connection, name, stream, settings)
    with _templates_lock:  # uncontended after the first page; pages of a new stream wait for its install
        if key in _installed_templates:
            return
        install_templates(client, name, stream, settings)
        _installed_templates.add(key)


def install_templates_now(
    connection: ElasticsearchConnection, client: Elasticsearch, name: str, stream: str, settings: Settings
) -> None:
    """Install the stream's templates whether or not this process already did (create, update, ``/test``)."""
    with _templates_lock:
        install_templates(client, name, stream, settings)
        _installed_templates.add(_template_key(connection, name, stream, settings))
