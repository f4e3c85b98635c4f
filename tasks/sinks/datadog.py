"""Datadog sink through the official ``datadog-api-client``.

- inference logs (and events other than drift/threshold) go to Logs intake v2, ≤ 1,000 entries and
  ≤ 5 MB a request, each entry carrying ``modelpulse.id``;
- drift metrics become v2 series gauges ``modelpulse.drift.<method>`` tagged with model, version,
  feature, organization and project (a re-sent point overwrites the same series and timestamp);
- ``drift.detected`` and ``threshold.breached`` events become Datadog events (aggregation key and a
  ``modelpulse.id`` tag = the event id).

403 fails the run naming the API key; 429 waits for ``X-RateLimit-Reset`` seconds, then re-sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from datadog_api_client.exceptions import ApiException
from datadog_api_client.v1.api.authentication_api import AuthenticationApi
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v1.model.event_alert_type import EventAlertType
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_series import MetricSeries
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
from tasks.sinks.encoding import dumps, loads
from tasks.sinks.records import model_labels, modelpulse_fields, time_epoch, time_iso

MAX_LOGS_PER_REQUEST = 1000
MAX_LOGS_BYTES = 5 * 1024 * 1024
MAX_SERIES_PER_REQUEST = 1000
BUSY_RETRIES = 5
MAX_RATE_LIMIT_WAIT = 60.0
EVENT_TYPES_AS_EVENTS = {"drift.detected": EventAlertType.WARNING, "threshold.breached": EventAlertType.ERROR}


def tags(stream: str, record: dict[str, Any]) -> list[str]:
    """Datadog ``key:value`` tags from the record's labels."""
    return [f"{key}:{value}" for key, value in model_labels(stream, record).items()]


def to_log(target: ExportTarget, stream: str, record: dict[str, Any]) -> HTTPLogItem:
    """A Logs intake entry; the ModelPulse fields become the ``modelpulse`` attribute."""
    fields = modelpulse_fields(stream, record)
    labels = model_labels(stream, record)
    return HTTPLogItem(
        message=dumps(fields).decode(),
        ddsource="modelpulse",
        ddtags=",".join(tags(stream, record)),
        hostname=target.config.get("host") or "modelpulse",
        service=labels.get("model", "modelpulse"),
        date=time_iso(stream, record),
        modelpulse=loads(dumps(fields)),
    )


def to_series(stream: str, record: dict[str, Any]) -> MetricSeries:
    """A one-point gauge ``modelpulse.drift.<method>`` at the computation time."""
    return MetricSeries(
        metric=f"modelpulse.drift.{record['method']}",
        type=MetricIntakeType.GAUGE,
        points=[MetricPoint(timestamp=int(time_epoch(stream, record)), value=float(record["value"]))],
        tags=tags(stream, record),
    )


def to_event(stream: str, record: dict[str, Any]) -> EventCreateRequest:
    """A Datadog event for a drift or threshold event, keyed by the ModelPulse event id."""
    data = record["data"] or {}
    title = f"ModelPulse {record['type']}: {data.get('model', '')} {data.get('metric', '')}".strip()
    return EventCreateRequest(
        title=title[:500],
        text=json.dumps(data, separators=(",", ":"), default=str)[:4000],
        aggregation_key=record["record_id"][:100],
        alert_type=EVENT_TYPES_AS_EVENTS[record["type"]],
        date_happened=int(time_epoch(stream, record)),
        source_type_name="modelpulse",
        tags=[*tags(stream, record), f"modelpulse.id:{record['record_id']}"],
    )


def ship_page(
    connection: DatadogConnection, target: ExportTarget, stream: str, records: list[dict[str, Any]]
) -> ShipResult:
    """Send one page: logs, series or events depending on the stream (see the module docstring).

    Raises:
        CredentialsRejected: Datadog answered 403 (the API key, or application key, is not valid).
        SinkUnavailable: Datadog stayed rate-limited or failing through the retries.
    """
    client = connection.get_client(timeout=request_timeout())
    result = ShipResult()
    if stream == "drift_metrics":
        metrics = MetricsApi(client)
        for chunk in _chunks(records, MAX_SERIES_PER_REQUEST):
            body = MetricPayload(series=[to_series(stream, record) for record in chunk])
            _send(lambda body=body: metrics.submit_metrics(body=body), chunk, result)
        return result
    as_events = [r for r in records if stream == "events" and r["type"] in EVENT_TYPES_AS_EVENTS]
    as_logs = [r for r in records if not (stream == "events" and r["type"] in EVENT_TYPES_AS_EVENTS)]
    events = EventsApi(client)
    for record in as_events:
        body = to_event(stream, record)
        _send(lambda body=body: events.create_event(body=body), [record], result)
    logs = LogsApi(client)
    for chunk in _log_chunks([(r, to_log(target, stream, r)) for r in as_logs]):
        body = HTTPLog([item for _, item in chunk])
        _send(lambda body=body: logs.submit_log(body=body), [r for r, _ in chunk], result)
    return result


def _send(call: Callable[[], Any], records: list[dict[str, Any]], result: ShipResult) -> None:
    """Make one request; 429/5xx re-sent, 403 raised, other 4xx rejects the request's records."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            call()
        except ApiException as error:
            status = error.status
            if status == 403:
                raise CredentialsRejected(
                    "Datadog rejected the API key (403 Forbidden): check the export's api_key"
                    " (and app_key) and its site"
                ) from None
            if status == 429 or (status is not None and status >= 500):
                if attempt == BUSY_RETRIES:
                    raise SinkUnavailable(f"Datadog still answering {status} after {BUSY_RETRIES} retries") from None
                result.retried += len(records)
                pause(_retry_wait(error, attempt))
                continue
            reason = f"Datadog answered {status}: {_body_text(error.body)}"
            result.rejected.extend(Rejection(r["record_id"], reason, status) for r in records)
            return
        except Urllib3Error as error:
            raise SinkUnavailable(_unreachable(error)) from None
        result.shipped += len(records)
        return


def _unreachable(error: Urllib3Error) -> str:
    """A network failure in words: a timeout says so, anything else is 'cannot reach'."""
    cause = error.reason if isinstance(error, MaxRetryError) else error
    if isinstance(cause, Urllib3Timeout):
        return f"Datadog did not answer within {request_timeout():g} s"
    return f"cannot reach Datadog: {error}"


def _retry_wait(error: ApiException, attempt: int) -> float:
    """``X-RateLimit-Reset`` (seconds until the window resets) when given, else backoff."""
    headers = {k.lower(): v for k, v in (error.headers or {}).items()}
    reset = headers.get("x-ratelimit-reset")
    if error.status == 429 and reset is not None:
        try:
            return min(max(float(reset), 0.0), MAX_RATE_LIMIT_WAIT)
        except ValueError:
            pass
    return backoff_delay(attempt)


def _body_text(body: Any) -> str:
    if isinstance(body, dict):
        return json.dumps(body)[:500]
    return str(body)[:500]


def _chunks(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def _log_chunks(
    pairs: list[tuple[dict[str, Any], HTTPLogItem]],
) -> list[list[tuple[dict[str, Any], HTTPLogItem]]]:
    """Chunks of ≤ 1,000 entries and ≤ 5 MB of (approximate) JSON."""
    out: list[list[tuple[dict[str, Any], HTTPLogItem]]] = []
    current: list[tuple[dict[str, Any], HTTPLogItem]] = []
    size = 0
    for pair in pairs:
        entry_size = len(pair[1].message) * 2 + 512  # message twice (text + attribute) plus envelope
        if current and (len(current) >= MAX_LOGS_PER_REQUEST or size + entry_size > MAX_LOGS_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(pair)
        size += entry_size
    if current:
        out.append(current)
    return out


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
        return [Check("reachable", False, f"Datadog answered {error.status}: {_body_text(error.body)}")]
    except Urllib3Error as error:
        return [Check("reachable", False, _unreachable(error))]
    return [
        Check("reachable", True, f"Datadog site {connection.site} answered"),
        Check("credentials", True, "API key is valid"),
    ]
