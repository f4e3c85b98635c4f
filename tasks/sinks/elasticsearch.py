"""Elasticsearch sink: ECS-style documents through the official client's ``streaming_bulk`` helper.

Documents are indexed with ``_id`` = the record id, so a re-shipped page overwrites instead of
duplicating. Per-item 429s (and 5xx) are re-sent with backoff; any other per-item failure (a mapping
error, say) is a rejection with Elasticsearch's reason.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, SSLError, TransportError, helpers

from blocks.elasticsearch import ElasticsearchConnection
from store.export_runs import Rejection
from tasks.sinks.base import (
    Check,
    CredentialsRejected,
    ExportTarget,
    ShipResult,
    SinkUnavailable,
    backoff_delay,
    pause,
    request_timeout,
)
from tasks.sinks.records import DATASETS, model_labels, modelpulse_fields, time_iso

DEFAULT_INDICES = {
    "inference_logs": "modelpulse-inference-logs",
    "drift_metrics": "modelpulse-drift-metrics",
    "events": "modelpulse-events",
}
CHUNK_SIZE = 500
MAX_CHUNK_BYTES = 10 * 1024 * 1024
ITEM_RETRIES = 5
RETRYABLE_ITEM_STATUSES = frozenset({429, 500, 502, 503, 504})

_installed_templates: set[tuple[int, str]] = set()
_templates_lock = threading.Lock()


def index_name(target: ExportTarget, stream: str) -> str:
    """The index a stream goes to: ``config.indices[stream]`` or the default."""
    return (target.config.get("indices") or {}).get(stream) or DEFAULT_INDICES[stream]


def to_document(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """An ECS-style document: ``@timestamp``, ``event.*``, ``service.name``, ``labels``, ``modelpulse.*``."""
    labels = model_labels(stream, record)
    return {
        "@timestamp": time_iso(stream, record),
        "event": {"dataset": DATASETS[stream], "kind": "event" if stream == "events" else "metric"},
        "service": {"name": labels.get("model", "modelpulse")},
        "labels": labels,
        "modelpulse": modelpulse_fields(stream, record),
    }


def index_template(index: str) -> dict[str, Any]:
    """Mappings for the fields dashboards filter on; the rest stays dynamic."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [index],
        "priority": 100,
        "template": {
            "mappings": {
                "properties": {
                    "@timestamp": {"type": "date"},
                    "event": {"properties": {"dataset": keyword, "kind": keyword}},
                    "service": {"properties": {"name": keyword}},
                    "labels": {"type": "object", "dynamic": True},
                    "modelpulse": {
                        "properties": {
                            "id": keyword,
                            "organization_id": keyword,
                            "project_id": keyword,
                            "model": keyword,
                            "model_version": keyword,
                            "feature": keyword,
                            "method": keyword,
                            "event_type": keyword,
                            "value": {"type": "double"},
                            "threshold": {"type": "double"},
                            "latency_ms": {"type": "double"},
                        }
                    },
                }
            }
        },
        "_meta": {"managed_by": "modelpulse"},
    }


def ensure_index_template(client: Elasticsearch, index: str) -> None:
    """Install the index template for ``index`` once per client and process (idempotent PUT)."""
    key = (id(client), index)
    with _templates_lock:
        if key in _installed_templates:
            return
        client.indices.put_index_template(name=index, **index_template(index))
        _installed_templates.add(key)


def ship_page(
    connection: ElasticsearchConnection, target: ExportTarget, stream: str, records: list[dict[str, Any]]
) -> ShipResult:
    """Index one page with ``streaming_bulk``; re-send per-item 429/5xx, reject other failures.

    Raises:
        CredentialsRejected: Elasticsearch answered 401/403.
        SinkUnavailable: some items were still refused as busy after the item retries, or the
            cluster could not be reached or did not answer in time.
    """
    with _network_errors(connection):
        return _ship(connection.get_client(request_timeout=request_timeout()), target, stream, records)


@contextmanager
def _network_errors(connection: ElasticsearchConnection) -> Iterator[None]:
    """The client's connection failures as ``SinkUnavailable`` saying what went wrong, and where."""
    try:
        yield
    except ConnectionTimeout as error:
        raise SinkUnavailable(
            f"Elasticsearch at {connection.url} did not answer within {request_timeout():g} s"
        ) from error
    except SSLError as error:
        raise SinkUnavailable(f"TLS with Elasticsearch at {connection.url} failed: {error.message}") from error
    except TransportError as error:  # ApiError (an answer) is not a TransportError
        raise SinkUnavailable(f"cannot reach Elasticsearch at {connection.url}: {error.message}") from error


def _ship(client: Elasticsearch, target: ExportTarget, stream: str, records: list[dict[str, Any]]) -> ShipResult:
    index = index_name(target, stream)
    try:
        if target.config.get("index_template", True):
            ensure_index_template(client, index)
    except ApiError as error:
        _raise_if_auth(error.status_code, str(error))
        raise
    pending = {
        record["record_id"]: {
            "_op_type": "index",
            "_index": index,
            "_id": record["record_id"],
            "_source": to_document(stream, record),
        }
        for record in records
    }
    result = ShipResult()
    for attempt in range(ITEM_RETRIES + 1):
        if attempt:
            result.retried += len(pending)
            pause(backoff_delay(attempt - 1))
        retry: dict[str, dict[str, Any]] = {}
        for ok, item in helpers.streaming_bulk(
            client,
            list(pending.values()),
            chunk_size=CHUNK_SIZE,
            max_chunk_bytes=MAX_CHUNK_BYTES,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=0,
        ):
            info = next(iter(item.values()))
            status = info.get("status")
            if ok or status == 409:  # 409: the document is already there, which is what we want
                result.shipped += 1
            elif status in RETRYABLE_ITEM_STATUSES:
                retry[info["_id"]] = pending[info["_id"]]
            else:
                _raise_if_auth(status, str(info.get("error")))
                result.rejected.append(Rejection(info["_id"], _reason(info.get("error")), status))
        pending = retry
        if not pending:
            return result
    raise SinkUnavailable(
        f"Elasticsearch still refused {len(pending)} documents as busy after {ITEM_RETRIES} retries"
    )


def _raise_if_auth(status: int | None, detail: str) -> None:
    if status in (401, 403):
        raise CredentialsRejected(f"Elasticsearch rejected the credentials ({status}): {detail[:300]}")


def _reason(error: Any) -> str:
    """Elasticsearch's per-item error as one line: ``type: reason (caused by ...)``."""
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, dict):
            reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
        return reason
    return str(error)


def check_connection(connection: ElasticsearchConnection, target: ExportTarget) -> list[Check]:
    """Reach the cluster (``GET /``), which also proves the credentials."""
    client = connection.get_client(request_timeout=request_timeout())
    try:
        with _network_errors(connection):
            info = client.info()
    except ApiError as error:
        if error.status_code in (401, 403):
            return [
                Check("reachable", True, f"{connection.url} answered"),
                Check("credentials", False, f"Elasticsearch rejected the credentials ({error.status_code})"),
            ]
        return [Check("reachable", False, f"{connection.url} answered {error.status_code}: {error}")]
    except SinkUnavailable as error:
        return [Check("reachable", False, str(error))]
    version = (info.get("version") or {}).get("number", "unknown")
    return [
        Check("reachable", True, f"Elasticsearch {version} at {connection.url}"),
        Check("credentials", True, "accepted"),
    ]
