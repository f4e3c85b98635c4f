"""Splunk sink: HTTP Event Collector events over httpx, batched as concatenated JSON (≤ 1 MB).

Every event carries its record id in ``fields`` (``modelpulse.id``), so searches can drop the
duplicates a re-shipped page may add (HEC has no upsert). HEC reply codes, as Splunk documents them:

==========  ===========================================  ====================================
code        meaning                                      what we do
==========  ===========================================  ====================================
0           Success                                      shipped
1, 2, 3, 4  token disabled / required / bad auth / bad   fail the run at once (CredentialsRejected)
5, 6, 12,   no data / invalid data format / event        events before ``invalid-event-number``
13, 15      field missing, blank / indexed fields bad    are indexed, that one is rejected,
                                                         the rest is re-sent
7, 10, 11,  incorrect index / channel / query auth       fail the run (SinkMisconfigured)
16
8, 9, 503   internal error / server busy                 re-sent with backoff
==========  ===========================================  ====================================
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from blocks.splunk import SplunkHecConnection
from store.export_runs import Rejection
from tasks.sinks.base import (
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
from tasks.sinks.encoding import dumps
from tasks.sinks.records import model_labels, modelpulse_fields, time_epoch

EVENT_PATH = "/services/collector/event"
HEALTH_PATH = "/services/collector/health"
MAX_BATCH_BYTES = 1_000_000
BUSY_RETRIES = 5
SOURCETYPES = {
    "inference_logs": "modelpulse:inference",
    "drift_metrics": "modelpulse:drift",
    "events": "modelpulse:event",
}
TOKEN_CODES = {1: "token disabled", 2: "token required", 3: "invalid authorization", 4: "invalid token"}
DATA_CODES = frozenset({5, 6, 12, 13, 15})
CONFIG_CODES = frozenset({7, 10, 11, 16})
BUSY_CODES = frozenset({8, 9})


def to_event(target: ExportTarget, stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """A HEC event: epoch ``time``, ``sourcetype`` per stream, optional index/source, ids in ``fields``."""
    config = target.config
    event: dict[str, Any] = {
        "time": round(time_epoch(stream, record), 3),
        "host": config.get("host") or "modelpulse",
        "source": config.get("source") or "modelpulse",
        "sourcetype": SOURCETYPES[stream],
        "event": modelpulse_fields(stream, record),
        # Indexed fields must be strings: the id for de-duplication, labels for fast filtering.
        "fields": {"modelpulse.id": record["record_id"], **model_labels(stream, record)},
    }
    if config.get("index"):
        event["index"] = config["index"]
    return event


def batches(events: list[tuple[str, bytes]], limit: int = MAX_BATCH_BYTES) -> list[list[tuple[str, bytes]]]:
    """Split ``(record_id, encoded event)`` pairs into batches of at most ``limit`` bytes."""
    out: list[list[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    size = 0
    for pair in events:
        if current and size + len(pair[1]) > limit:
            out.append(current)
            current, size = [], 0
        current.append(pair)
        size += len(pair[1])
    if current:
        out.append(current)
    return out


def ship_page(
    connection: SplunkHecConnection, target: ExportTarget, stream: str, records: list[dict[str, Any]]
) -> ShipResult:
    """Send one page to HEC in ≤ 1 MB batches and map each reply code (see the module table).

    Raises:
        CredentialsRejected: HEC rejected the token (codes 1-4).
        SinkMisconfigured: the export names a wrong index or channel (codes 7, 10, 11, 16).
        SinkUnavailable: HEC stayed busy through the retries.
    """
    client = connection.get_client(timeout=request_timeout())
    encoded = [
        (record["record_id"], dumps(to_event(target, stream, record)))
        for record in records
    ]
    result = ShipResult()
    for batch in batches(encoded):
        _ship_batch(client, batch, result)
    return result


def _ship_batch(client: httpx.Client, batch: list[tuple[str, bytes]], result: ShipResult) -> None:
    busy_attempts = 0
    while batch:
        response = _post(client, EVENT_PATH, b"".join(event for _, event in batch))
        reply = _reply(response)
        code = reply.get("code")
        if response.status_code == 200 and code in (0, None):
            result.shipped += len(batch)
            return
        if code in TOKEN_CODES:
            raise CredentialsRejected(
                f"Splunk HEC rejected the token (code {code}: {reply.get('text', TOKEN_CODES[code])})"
            )
        if code in CONFIG_CODES:
            raise SinkMisconfigured(f"Splunk HEC refused the request (code {code}: {reply.get('text')})")
        if code in DATA_CODES:
            # HEC indexes the events before the invalid one and drops the rest of the request.
            bad = int(reply.get("invalid-event-number", 0))
            result.shipped += bad
            record_id = batch[bad][0] if bad < len(batch) else batch[-1][0]
            reason = f"HEC code {code}: {reply.get('text', 'invalid data')}"
            result.rejected.append(Rejection(record_id, reason, response.status_code))
            batch = batch[bad + 1 :]
            continue
        if code in BUSY_CODES or response.status_code in (429, 500, 502, 503, 504):
            if busy_attempts >= BUSY_RETRIES:
                raise SinkUnavailable(f"Splunk HEC still busy after {BUSY_RETRIES} retries: {reply}")
            busy_attempts += 1
            result.retried += len(batch)
            pause(backoff_delay(busy_attempts - 1))
            continue
        raise SinkUnavailable(f"Splunk HEC answered {response.status_code}: {response.text[:300]}")


def _post(client: httpx.Client, path: str, content: bytes) -> httpx.Response:
    """POST to HEC; network failures become ``SinkUnavailable`` saying which, and where."""
    try:
        return client.post(path, content=content)
    except httpx.TimeoutException as error:
        raise SinkUnavailable(
            f"Splunk HEC at {client.base_url} did not answer within {client.timeout.read:g} s"
        ) from error
    except httpx.TransportError as error:
        raise SinkUnavailable(f"cannot reach Splunk HEC at {client.base_url}: {error}") from error


def _reply(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def check_connection(connection: SplunkHecConnection, target: ExportTarget) -> list[Check]:
    """HEC health, then the token (an empty event batch: code 5 "No data" means the token is good)."""
    client = connection.get_client(timeout=request_timeout())
    try:
        health = client.get(HEALTH_PATH)
    except httpx.TimeoutException:
        return [Check("reachable", False, f"{connection.hec_url} did not answer within {request_timeout():g} s")]
    except httpx.HTTPError as error:
        return [Check("reachable", False, f"cannot reach {connection.hec_url}: {error}")]
    healthy = health.status_code == 200
    checks = [Check("reachable", healthy, f"HEC health: {health.status_code} {_reply(health).get('text', '')}")]
    try:
        probe = _post(client, EVENT_PATH, b"")
    except SinkUnavailable as error:
        return [*checks, Check("credentials", False, f"token check failed: {error}")]
    code = _reply(probe).get("code")
    if code in TOKEN_CODES:
        return [*checks, Check("credentials", False, f"Splunk HEC rejected the token (code {code})")]
    return [*checks, Check("credentials", code in (0, 5), f"HEC answered code {code}")]
