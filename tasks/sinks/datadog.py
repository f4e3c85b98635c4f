"""Datadog sink: request bodies built as JSON bytes, gzip-compressed, sent through the official
``datadog-api-client``'s own transport (its site and ``api_url`` resolution, keys, timeouts and
urllib3 pool).

- inference logs (and events other than drift/threshold) go to Logs intake v2, each entry carrying
  ``modelpulse.id``; requests of ≤ 1,000 entries and ≤ 5 MB uncompressed, gzip-compressed;
- drift metrics become v2 series gauges ``modelpulse.drift.<method>`` tagged with model, version,
  feature, organization and project (a re-sent point overwrites the same series and timestamp);
  requests of ≤ 512,000 bytes compressed and < 5,242,880 bytes decompressed, gzip-compressed;
- ``drift.detected`` and ``threshold.breached`` events become Datadog events (aggregation key and a
  ``modelpulse.id`` tag = the event id), one plain JSON request each: Datadog documents no
  ``Content-Encoding`` for the v1 events endpoint.

A log entry over Datadog's 1 MB per-log limit is rejected (with the reason) before sending, rather
than shipped and silently truncated by Datadog; the rest of the page ships. 401/403 fail the run
naming the API key; 429 waits for ``X-RateLimit-Reset`` seconds, then re-sends; 408 and 5xx are
re-sent with backoff; 413 splits the request in two (a proxy with smaller limits); any other 4xx
rejects the request's records with Datadog's answer.

Errors::

    SinkError
    ├── CredentialsRejected   401/403: the API key is missing or not valid for this site
    └── SinkUnavailable       still 408/429/5xx after the retries, or Datadog unreachable
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from datadog_api_client import ApiClient
from datadog_api_client.api_client import Endpoint
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v1.api.authentication_api import AuthenticationApi
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from blocks.datadog import DatadogConnection
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
from tasks.sinks.encoding import dumps
from tasks.sinks.records import model_labels, modelpulse_fields, time_epoch, time_iso
from tasks.upstream_errors import body_summary, datadog_error

# Logs intake v2, https://docs.datadoghq.com/api/latest/logs/#send-logs: "Maximum content size per
# payload (uncompressed): 5MB; Maximum size for a single log: 1MB; Maximum array size if sending
# multiple logs in an array: 1000 entries"; 413 is "batch is above 5MB uncompressed". No compressed
# limit is documented. MB is read as 10^6 bytes, the stricter reading (the Datadog Agent's own log
# batches stop at 5,000,000 bytes too). Accepted encodings (its OpenAPI spec, the client's
# ``ContentEncoding``): identity, gzip, deflate.
MAX_LOGS_PER_REQUEST = 1000
MAX_LOGS_BYTES = 5_000_000
MAX_LOG_ENTRY_BYTES = 1_000_000
# Metrics v2, https://docs.datadoghq.com/api/latest/metrics/#submit-metrics: "The maximum payload
# size is 500 kilobytes (512000 bytes). Compressed payloads must have a decompressed size of less
# than 5 megabytes (5242880 bytes)." (the Agent's serializer_max_series_payload_size and
# serializer_max_series_uncompressed_payload_size defaults). Encodings (``MetricContentEncoding``):
# deflate, zstd1, gzip. No limit on the number of series is documented.
MAX_SERIES_COMPRESSED_BYTES = 512_000
MAX_SERIES_BYTES = 5_242_880 - 1
# zlib level 1 compresses inference logs ~11x for ~2.4 us a record; level 6 ~13.5x for ~5.2 us
# (measured, NOTES-datadog.md). CPU per record is the goal, and the logs limits bind on
# uncompressed bytes anyway.
GZIP_LEVEL = 1
GZIP = 31  # zlib wbits: a gzip header and trailer

BUSY_RETRIES = 5
MAX_RATE_LIMIT_WAIT = 60.0
RETRIED_STATUSES = {408, 429}  # and every 5xx: Datadog's "request should be retried after some time"
EVENT_TYPES_AS_EVENTS = {"drift.detected": "warning", "threshold.breached": "error"}
GAUGE = 3  # MetricIntakeType.GAUGE on the wire
# The names Datadog sees (the dashboard in deploy/dashboards/ queries them; tests/test_dashboards.py
# checks its queries against these): every log's ``ddsource`` and every event's ``source_type_name``;
# a log's ``service`` when no model is named (else the model); its ``hostname`` unless ``config.host``;
# the log attribute holding the ModelPulse fields; a drift gauge's name before its method; the tag
# naming an event's ModelPulse id.
SOURCE = "modelpulse"
DEFAULT_SERVICE = "modelpulse"
DEFAULT_HOST = "modelpulse"
ATTRIBUTE = "modelpulse"
METRIC_PREFIX = "modelpulse.drift."
ID_TAG = "modelpulse.id"


@dataclass(frozen=True)
class _Limits:
    """What one request body may hold: entries, bytes before and bytes after compression."""

    max_entries: int | None
    max_bytes: int
    max_compressed: int | None
    max_entry_bytes: int | None
    head: bytes  # the body around the comma-joined entries
    tail: bytes


LOGS = _Limits(MAX_LOGS_PER_REQUEST, MAX_LOGS_BYTES, None, MAX_LOG_ENTRY_BYTES, b"[", b"]")
SERIES = _Limits(None, MAX_SERIES_BYTES, MAX_SERIES_COMPRESSED_BYTES, None, b'{"series":[', b"]}")


@dataclass(frozen=True)
class _Intake:
    """One intake operation as the client would call it: URL, headers (keys included) and timeout."""

    client: ApiClient
    url: str
    headers: dict[str, str]
    timeout: urllib3.Timeout | None


@dataclass(frozen=True)
class _Batch:
    """One request's records, their encoded entries and the body that carries them."""

    records: list[dict[str, Any]]
    entries: list[bytes]
    body: bytes


def tags(stream: str, record: dict[str, Any]) -> list[str]:
    """Datadog ``key:value`` tags from the record's labels."""
    return [f"{key}:{value}" for key, value in model_labels(stream, record).items()]


def log_entry(hostname: str, stream: str, record: dict[str, Any]) -> bytes:
    """A Logs intake entry as JSON bytes; the ModelPulse fields are both the ``message`` (as text)
    and the ``modelpulse`` attribute, serialised once."""
    fields = dumps(modelpulse_fields(stream, record))
    labels = model_labels(stream, record)
    return dumps(
        {
            "message": fields.decode(),
            "ddsource": SOURCE,
            "ddtags": ",".join([f"{key}:{value}" for key, value in labels.items()]),
            "hostname": hostname,
            "service": labels.get("model", DEFAULT_SERVICE),
            "date": time_iso(stream, record),
            ATTRIBUTE: orjson.Fragment(fields),
        }
    )


def series_entry(stream: str, record: dict[str, Any]) -> bytes:
    """A one-point gauge ``modelpulse.drift.<method>`` at the computation time, as JSON bytes."""
    return dumps(
        {
            "metric": f"{METRIC_PREFIX}{record['method']}",
            "type": GAUGE,
            "points": [{"timestamp": int(time_epoch(stream, record)), "value": float(record["value"])}],
            "tags": tags(stream, record),
        }
    )


def event_body(stream: str, record: dict[str, Any]) -> bytes:
    """A Datadog event for a drift or threshold event, keyed by the ModelPulse event id."""
    data = record["data"] or {}
    title = f"ModelPulse {record['type']}: {data.get('model', '')} {data.get('metric', '')}".strip()
    return dumps(
        {
            "title": title[:500],
            "text": dumps(data).decode()[:4000],
            "aggregation_key": record["record_id"][:100],
            "alert_type": EVENT_TYPES_AS_EVENTS[record["type"]],
            "date_happened": int(time_epoch(stream, record)),
            "source_type_name": SOURCE,
            "tags": [*tags(stream, record), f"{ID_TAG}:{record['record_id']}"],
        }
    )


def ship_page(
    connection: DatadogConnection, target: ExportTarget, stream: str, records: list[dict[str, Any]]
) -> ShipResult:
    """Send one page: logs, series or events depending on the stream (see the module docstring).

    Raises:
        CredentialsRejected: Datadog answered 401 or 403 (the API key is missing or not valid).
        SinkUnavailable: Datadog stayed rate-limited or failing through the retries, or unreachable.
    """
    client = connection.get_client(timeout=request_timeout())
    result = ShipResult()
    if stream == "drift_metrics":
        intake = _intake(client, MetricsApi(client)._submit_metrics_endpoint)
        entries = [series_entry(stream, record) for record in records]
        _ship_entries(intake, SERIES, records, entries, result)
        return result
    as_events = [r for r in records if stream == "events" and r["type"] in EVENT_TYPES_AS_EVENTS]
    as_logs = [r for r in records if not (stream == "events" and r["type"] in EVENT_TYPES_AS_EVENTS)]
    if as_events:
        events = _intake(client, EventsApi(client)._create_event_endpoint)
        for record in as_events:
            _deliver(events, _Batch([record], [], event_body(stream, record)), None, None, result)
    if as_logs:
        intake = _intake(client, LogsApi(client)._submit_log_endpoint)
        hostname = target.config.get("host") or DEFAULT_HOST
        entries = [log_entry(hostname, stream, record) for record in as_logs]
        _ship_entries(intake, LOGS, as_logs, entries, result)
    return result


def _intake(client: ApiClient, endpoint: Endpoint) -> _Intake:
    """Resolve an operation the way the client's ``Endpoint`` does (per-operation servers, ``site``,
    an ``api_url`` override, auth headers, default headers), once per page.

    The generated API classes keep each operation's ``Endpoint`` (its servers and auth schemes) as
    ``_<operation>_endpoint``; reading it keeps every URL and key exactly as the client would send
    them, while the body is ours (the client would ``json.dumps`` it again before compressing).
    """
    configuration = client.configuration
    operation = endpoint.settings["operation_id"]
    host = configuration.get_host_from_settings(
        configuration.server_operation_index.get(operation, configuration.server_index),
        variables=configuration.server_operation_variables.get(operation, configuration.server_variables),
        servers=endpoint.settings.get("servers"),
    )
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    endpoint.update_params_for_auth(headers, [])
    headers.update(client.default_headers)
    timeout = configuration.request_timeout
    if isinstance(timeout, tuple):
        timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
    elif timeout:
        timeout = urllib3.Timeout(total=timeout)
    return _Intake(client, host + endpoint.settings["endpoint_path"], headers, timeout or None)


def _ship_entries(
    intake: _Intake, limits: _Limits, records: list[dict[str, Any]], entries: list[bytes], result: ShipResult
) -> None:
    """Reject entries no request can carry, pack the rest into gzip bodies and send them."""
    fitting: list[int] = []
    for index, entry in enumerate(entries):
        reason = _oversized(limits, len(entry))
        if reason:
            result.rejected.append(Rejection(records[index]["record_id"], reason))
        else:
            fitting.append(index)
    if len(fitting) < len(entries):
        records = [records[i] for i in fitting]
        entries = [entries[i] for i in fitting]
    for batch in _batches(limits, records, entries):
        _deliver(intake, batch, limits, "gzip", result)


def _oversized(limits: _Limits, size: int) -> str | None:
    if limits.max_entry_bytes is not None and size > limits.max_entry_bytes:
        return (
            f"log entry is {size:,} bytes, over Datadog's 1 MB limit for one log"
            " (Datadog would truncate it); not sent"
        )
    if size + len(limits.head) + len(limits.tail) > limits.max_bytes:
        return f"entry is {size:,} bytes, over Datadog's {limits.max_bytes:,}-byte request limit; not sent"
    return None


def _batches(limits: _Limits, records: list[dict[str, Any]], entries: list[bytes]) -> Iterator[_Batch]:
    """Consecutive requests within ``limits``: as many entries as the count and the uncompressed
    limit allow, then, where a compressed limit exists, fewer if the compressed body is over it.

    Bodies are compressed once in the usual case. When the compressed limit binds, the
    uncompressed bytes a body may hold are narrowed by the compression ratio just seen, so later
    bodies land under it at the first try.
    """
    frame = len(limits.head) + len(limits.tail)
    target = limits.max_bytes
    start = 0
    while start < len(entries):
        end, size = _fill(limits, entries, start, target)
        body = _gzip(limits, entries[start:end])
        while limits.max_compressed is not None and len(body) > limits.max_compressed and end - start > 1:
            target = max(frame, int(size * limits.max_compressed / len(body) * 0.95))
            end, size = _fill(limits, entries, start, target)
            body = _gzip(limits, entries[start:end])
        if limits.max_compressed is not None:
            # Follow the data's compressibility both ways, never past the uncompressed limit.
            target = min(limits.max_bytes, max(frame, int(size * limits.max_compressed / len(body) * 0.95)))
        yield _Batch(records[start:end], entries[start:end], body)
        start = end


def _fill(limits: _Limits, entries: list[bytes], start: int, target: int) -> tuple[int, int]:
    """The end index and uncompressed size of a body from ``start``: at least one entry, then
    entries while the count and ``target`` bytes allow."""
    size = len(limits.head) + len(limits.tail) + len(entries[start])
    end = start + 1
    last = len(entries) if limits.max_entries is None else min(len(entries), start + limits.max_entries)
    while end < last and size + 1 + len(entries[end]) <= target:
        size += 1 + len(entries[end])  # the comma
        end += 1
    return end, size


def _gzip(limits: _Limits, entries: list[bytes]) -> bytes:
    return zlib.compress(limits.head + b",".join(entries) + limits.tail, GZIP_LEVEL, wbits=GZIP)


def _deliver(
    intake: _Intake, batch: _Batch, limits: _Limits | None, encoding: str | None, result: ShipResult
) -> None:
    """Make one request; 429/408/5xx re-sent, 401/403 raised, 413 split in two (when the body has
    several entries), other 4xx reject the request's records."""
    headers = intake.headers if encoding is None else {**intake.headers, "Content-Encoding": encoding}
    for attempt in range(BUSY_RETRIES + 1):
        try:
            response = intake.client.rest_client.pool_manager.request(
                "POST", intake.url, body=batch.body, headers=headers, timeout=intake.timeout, preload_content=True
            )
        except Urllib3Error as error:
            raise SinkUnavailable(_unreachable(error)) from None
        status = response.status
        if 200 <= status < 300:
            result.shipped += len(batch.records)  # 202 says nothing per entry: nothing to read
            return
        if status in (401, 403):
            raise CredentialsRejected(
                f"Datadog rejected the API key ({status} {'Forbidden' if status == 403 else 'Unauthorized'}):"
                " check the export's api_key (and app_key) and its site"
            )
        if status == 413 and limits is not None and len(batch.records) > 1:
            # Over a limit we kept to: something between us and Datadog (a proxy) allows less.
            half = len(batch.records) // 2
            for part in (slice(0, half), slice(half, None)):
                smaller = dataclasses.replace(limits, max_entries=half)
                for piece in _batches(smaller, batch.records[part], batch.entries[part]):
                    _deliver(intake, piece, smaller, encoding, result)
            return
        if status in RETRIED_STATUSES or status >= 500:
            if attempt == BUSY_RETRIES:
                raise SinkUnavailable(f"Datadog still answering {status} after {BUSY_RETRIES} retries")
            result.retried += len(batch.records)
            pause(_retry_wait(status, response.headers.get("X-RateLimit-Reset"), attempt))
            continue
        reason = f"Datadog answered {status}: {body_summary('datadog', response.data)}"
        result.rejected.extend(Rejection(r["record_id"], reason, status) for r in batch.records)
        return


def _unreachable(error: Urllib3Error) -> str:
    """A network failure in words: a timeout says so, anything else is 'cannot reach'."""
    cause = error.reason if isinstance(error, MaxRetryError) else error
    if isinstance(cause, Urllib3Timeout):
        return f"Datadog did not answer within {request_timeout():g} s"
    return f"cannot reach Datadog: {error}"


def _retry_wait(status: int, reset: str | None, attempt: int) -> float:
    """``X-RateLimit-Reset`` (seconds until the window resets) on a 429 when given, else backoff."""
    if status == 429 and reset is not None:
        try:
            return min(max(float(reset), 0.0), MAX_RATE_LIMIT_WAIT)
        except ValueError:
            pass
    return backoff_delay(attempt)


def check_connection(connection: DatadogConnection, target: ExportTarget) -> list[Check]:
    """Validate the API key (``GET /api/v1/validate``), which also proves the site is reachable."""
    try:
        AuthenticationApi(connection.get_client(timeout=request_timeout())).validate()
    except ApiException as error:
        if error.status == 403:
            return [
                Check("reachable", True, f"Datadog site {connection.site} answered"),
                Check("credentials", False, "Datadog rejected the API key (403 Forbidden)"),
            ]
        return [Check("reachable", False, f"Datadog answered {datadog_error(error)}")]
    except Urllib3Error as error:
        return [Check("reachable", False, _unreachable(error))]
    return [
        Check("reachable", True, f"Datadog site {connection.site} answered"),
        Check("credentials", True, "API key is valid"),
    ]
