"""Elasticsearch sink: ECS-style documents sent as NDJSON ``_bulk`` bytes built here with orjson.

Two modes (``config.mode``):

- ``data_stream`` (new exports): ``create`` operations with ``_id`` = the record id into a data
  stream. A data stream never overwrites: a re-shipped document answers 409 (it is already there),
  which counts as shipped.
- ``index`` (exports stored before modes existed): ``index`` operations with ``_id`` = the record
  id, so a re-shipped page overwrites itself.

Unless ``config.manage_templates`` is false, a composable index template per stream (and, with data
streams, an ILM policy) is installed before the first page a process ships to that stream, on create
of the export and on ``/test``: ``tasks.sinks.elasticsearch_templates``.

Per-item 429s (and 5xx) are re-sent with backoff, only those items; any other per-item failure (a
mapping error, say) is a rejection with Elasticsearch's reason. Exceptions::

    CredentialsRejected   401/403 on a bulk request, 401 on a template
    SinkMisconfigured     a template Elasticsearch refuses (a 400, or 403: missing privileges)
    SinkUnavailable       cannot connect / no answer in time / still busy after the item retries
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, SSLError, TransportError

from blocks.elasticsearch import ElasticsearchConnection
from store.export_runs import Rejection
from tasks.sinks.base import (
    BUSY_STATUSES,
    Check,
    CredentialsRejected,
    ExportTarget,
    ShipResult,
    SinkMisconfigured,
    SinkUnavailable,
    backoff_delay,
    pause,
    request_timeout,
)
from tasks.sinks.elasticsearch_templates import Settings, ensure_templates, install_templates_now
from tasks.sinks.encoding import dumps
from tasks.sinks.records import DATASETS, model_labels, modelpulse_fields, time_iso
from tasks.upstream_errors import body_summary, bounded, elasticsearch_error

DEFAULT_INDICES = {
    "inference_logs": "modelpulse-inference-logs",
    "drift_metrics": "modelpulse-drift-metrics",
    "events": "modelpulse-events",
}
MODES = ("index", "data_stream")
CHUNK_SIZE = 500
MAX_CHUNK_BYTES = 10 * 1024 * 1024
ITEM_RETRIES = 5
# Only what the per-item loop reads: a 500-item answer shrinks from ~100 KB to ~12 KB.
BULK_FILTER_PATH = "errors,items.*.status,items.*.error"



def index_name(target: ExportTarget, stream: str) -> str:
    """Where a stream goes (an index or a data stream): ``config.indices[stream]`` or the default."""
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


def prepare_target(connection: ElasticsearchConnection, target: ExportTarget) -> list[Check]:
    """Install the templates of every stream now (create, update, ``/test``), whichever streams
    the export ships today: they are small, and a stream added later finds its template ready.

    Returns one ``templates`` check saying what was installed or why not.
    """
    settings = Settings.of(target)
    if not settings.manage_templates:
        return [Check("templates", True, "not managed (config.manage_templates is false)")]
    # A caller is waiting (create, update, /test) and runs install again anyway: no client retries,
    # whose log lines would carry a traceback for a cluster that is merely down.
    client = connection.get_client(request_timeout=request_timeout(), max_retries=0)
    installed = []
    try:
        with _network_errors(connection):
            for stream in DEFAULT_INDICES:
                name = index_name(target, stream)
                install_templates_now(connection, client, name, stream, settings)
                installed.append(name)
    except (CredentialsRejected, SinkMisconfigured, SinkUnavailable) as error:
        return [Check("templates", False, str(error))]
    what = "data stream templates and ILM policies" if settings.data_streams else "index templates"
    return [Check("templates", True, f"{what} installed for {', '.join(installed)}")]


# --- shipping -------------------------------------------------------------------------------


def ship_page(
    connection: ElasticsearchConnection, target: ExportTarget, stream: str, records: list[dict[str, Any]]
) -> ShipResult:
    """Send one page as NDJSON ``_bulk`` requests; re-send per-item 429/5xx, reject other failures.

    Raises:
        CredentialsRejected: Elasticsearch answered 401/403.
        SinkMisconfigured: Elasticsearch refused the stream's template.
        SinkUnavailable: some items were still refused as busy after the item retries, or the
            cluster could not be reached or did not answer in time.
    """
    settings = Settings.of(target)
    name = index_name(target, stream)
    with _network_errors(connection):
        client = connection.get_client(request_timeout=request_timeout())
        if settings.manage_templates:
            ensure_templates(connection, client, name, stream, settings)
        return _ship(client, name, encode_operations(stream, records, settings.data_streams))


def encode_operations(stream: str, records: list[dict[str, Any]], create: bool) -> list[tuple[str, bytes]]:
    """Each record's ``_bulk`` lines (action and document, newline-terminated), by record id.

    The target goes in the request path, so the action line carries the ``_id`` only.
    """
    action = b'{"create":{"_id":' if create else b'{"index":{"_id":'
    return [
        (
            record["record_id"],
            b"".join((action, dumps(record["record_id"]), b"}}\n", dumps(to_document(stream, record)), b"\n")),
        )
        for record in records
    ]


def _chunks(operations: list[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    """Runs of at most ``CHUNK_SIZE`` operations and ``MAX_CHUNK_BYTES`` bytes (one oversized
    operation goes alone, for Elasticsearch to refuse)."""
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for operation in operations:
        length = len(operation[1])
        if chunk and (len(chunk) == CHUNK_SIZE or size + length > MAX_CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(operation)
        size += length
    if chunk:
        yield chunk


def _ship(client: Elasticsearch, name: str, operations: list[tuple[str, bytes]]) -> ShipResult:
    result = ShipResult()
    pending = operations
    for attempt in range(ITEM_RETRIES + 1):
        if attempt:
            result.retried += len(pending)
            pause(backoff_delay(attempt - 1))
        retry: list[tuple[str, bytes]] = []
        for chunk in _chunks(pending):
            _send_chunk(client, name, chunk, result, retry)
        pending = retry
        if not pending:
            return result
    raise SinkUnavailable(f"Elasticsearch still refused {len(pending)} documents as busy after {ITEM_RETRIES} retries")


def _send_chunk(
    client: Elasticsearch,
    name: str,
    chunk: list[tuple[str, bytes]],
    result: ShipResult,
    retry: list[tuple[str, bytes]],
) -> None:
    """One ``_bulk`` request; adds to ``result`` and collects the items to re-send in ``retry``."""
    body = b"".join([line for _, line in chunk])
    try:
        answer = client.bulk(index=name, operations=body, filter_path=BULK_FILTER_PATH).body  # type: ignore[arg-type]
    except ApiError as error:
        # The whole request was refused (after the client's own retries of 429/502/503/504).
        status = error.status_code
        reason = body_summary("elasticsearch", error.body)
        _raise_if_auth(status, reason)
        if status in BUSY_STATUSES:
            retry.extend(chunk)
            return
        result.rejected.extend(Rejection(record_id, reason, status) for record_id, _ in chunk)
        return
    if not answer.get("errors"):
        result.shipped += len(chunk)
        return
    items = answer.get("items") or []
    if len(items) != len(chunk):
        raise SinkUnavailable(f"Elasticsearch answered {len(items)} items to a bulk request of {len(chunk)}")
    for operation, item in zip(chunk, items, strict=True):
        info = next(iter(item.values()))
        status = info.get("status")
        # 409: the document is already there (a data stream's create of a re-shipped record).
        if status is not None and (status < 300 or status == 409):
            result.shipped += 1
        elif status in BUSY_STATUSES:
            retry.append(operation)
        else:
            _raise_if_auth(status, _reason(info.get("error")))
            result.rejected.append(Rejection(operation[0], _reason(info.get("error")), status))


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
        raise SinkUnavailable(
            f"TLS with Elasticsearch at {connection.url} failed: {bounded(error.message)}"
        ) from error
    except TransportError as error:  # ApiError (an answer) is not a TransportError
        raise SinkUnavailable(f"cannot reach Elasticsearch at {connection.url}: {bounded(error.message)}") from error


def _raise_if_auth(status: int | None, detail: str) -> None:
    if status in (401, 403):
        raise CredentialsRejected(f"Elasticsearch rejected the credentials ({status}): {detail}")


def _reason(error: Any) -> str:
    """Elasticsearch's per-item error as one line: ``type: reason (caused by ...)``, each part bounded."""
    if isinstance(error, dict):
        reason = f"{bounded(error.get('type', 'error'))}: {bounded(error.get('reason', ''))}"
        caused = error.get("caused_by")
        if isinstance(caused, dict):
            reason += f" (caused by {bounded(caused.get('type'))}: {bounded(caused.get('reason'))})"
        return reason
    return bounded(error)


def check_connection(connection: ElasticsearchConnection, target: ExportTarget) -> list[Check]:
    """Reach the cluster (``GET /``), which also proves the credentials, then install the templates."""
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
        return [Check("reachable", False, f"{connection.url} answered {elasticsearch_error(error)}")]
    except SinkUnavailable as error:
        return [Check("reachable", False, str(error))]
    version = (info.get("version") or {}).get("number", "unknown")
    return [
        Check("reachable", True, f"Elasticsearch {version} at {connection.url}"),
        Check("credentials", True, "accepted"),
        *prepare_target(connection, target),
    ]
