"""The ModelPulse view of a record, shared by every sink's document format.

Each sink wraps these fields in its own envelope (ECS for Elasticsearch, HEC events for Splunk,
log entries, series and events for Datadog); the fields themselves are the same everywhere.

Values are ready for ``tasks.sinks.encoding.dumps`` (not ``json.dumps``): a JSON column may arrive
as an ``orjson.Fragment``, and times as RFC 3339 strings or aware datetimes. Read a record's time
with `time_iso` / `time_epoch`, whichever form it arrived in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

TIME_FIELDS = {"inference_logs": "timestamp", "drift_metrics": "computed_at", "events": "timestamp"}
DATASETS = {
    "inference_logs": "modelpulse.inference_logs",
    "drift_metrics": "modelpulse.drift_metrics",
    "events": "modelpulse.events",
}


def iso(value: datetime | str | None) -> str | None:
    """RFC 3339 UTC with a ``Z`` (our datetimes are always aware UTC; strings are already so)."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat().replace("+00:00", "Z")


def epoch(value: datetime | str) -> float:
    """Seconds since the epoch of an aware datetime or an RFC 3339 string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.timestamp()


def time_iso(stream: str, record: dict[str, Any]) -> str:
    """When the record happened (inference, drift computation, event), RFC 3339 UTC."""
    return iso(record[TIME_FIELDS[stream]])  # type: ignore[return-value]


def time_epoch(stream: str, record: dict[str, Any]) -> float:
    """When the record happened, in seconds since the epoch."""
    return epoch(record[TIME_FIELDS[stream]])


def modelpulse_fields(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready ModelPulse fields of a record, keyed as they appear under ``modelpulse``."""
    common = {
        "id": record["record_id"],
        "organization_id": record["organization_id"],
        "project_id": record["project_id"],
    }
    if stream == "inference_logs":
        return {
            **common,
            "model": record["model"],
            "model_version": record["model_version"],
            "request_id": record["request_id"],
            "features": record["features"],
            "prediction": record["prediction"],
            "label": record["label"],
            "latency_ms": record["latency_ms"],
            "ingested_at": iso(record["ingested_at"]),
        }
    if stream == "drift_metrics":
        return {
            **common,
            "check_id": record["check_id"],
            "model": record["model"],
            "model_version": record["model_version"],
            "feature": record["feature"],
            "method": record["method"],
            "value": record["value"],
            "threshold": record["threshold"],
            "drifted": record["drifted"],
            "p_value": record["p_value"],
            "reference": {"from": iso(record["reference_from"]), "to": iso(record["reference_to"])},
            "current": {"from": iso(record["current_from"]), "to": iso(record["current_to"])},
        }
    return {**common, "event_type": record["type"], "data": record["data"]}


def model_labels(stream: str, record: dict[str, Any]) -> dict[str, str]:
    """Low-cardinality labels (model, version, feature, event type) for tags and ECS ``labels``."""
    labels = {"organization": record["organization_id"]}
    if record.get("project_id"):
        labels["project"] = record["project_id"]
    if stream == "events":
        labels["event_type"] = record["type"]
        data = record.get("data") or {}
        if isinstance(data.get("model"), str):
            labels["model"] = data["model"]
        return labels
    labels["model"] = record["model"]
    if record.get("model_version"):
        labels["model_version"] = record["model_version"]
    if stream == "drift_metrics":
        labels["feature"] = record["feature"]
        labels["method"] = record["method"]
    return labels
