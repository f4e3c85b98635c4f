"""Splunk sink: HTTP Event Collector events over httpx, batched as concatenated JSON (≤ 1 MB).

Every event carries its record id in ``fields`` (``modelpulse.id``), so searches can drop the
duplicates a re-shipped page may add (HEC has no upsert). HEC reply codes, as Splunk documents them:

==========  ===========================================  ====================================
code        meaning                                      what we do
==========  ===========================================  ====================================
0           Success                                      shipped (with ``indexer_ack``: once
                                                         its ``ackId`` is confirmed)
1, 2, 3, 4  token disabled / required / bad auth / bad   fail the run at once (CredentialsRejected)
5, 6, 12,   no data / invalid data format / event        events before ``invalid-event-number``
13, 15      field missing, blank / indexed fields bad    are indexed, that one is rejected,
                                                         the rest is re-sent
7, 10, 11,  incorrect index / data channel missing /     fail the run (SinkMisconfigured); 10
14, 16      invalid / ACK disabled / query auth          and 14 say which ``indexer_ack`` fits
8, 9, 503   internal error / server busy                 re-sent with backoff
==========  ===========================================  ====================================

Indexer acknowledgement (``config.indexer_ack``): a 200 from HEC means *received*, not indexed.
With it, every request carries ``X-Splunk-Request-Channel`` (one GUID per export, the same in
every worker), each accepted request answers an ``ackId``, and `ship_page` returns only once
``/services/collector/ack`` has confirmed every ``ackId`` of the page, so the watermark moves only
past indexed events. A batch still unconfirmed after ``config.ack_timeout_seconds`` is re-sent
(``retried``) and awaited again, `ACK_RESENDS` times at most; then the page fails
(SinkUnavailable) and its task retries it.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

import httpx

from blocks.splunk import SplunkHecConnection
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
    page_deadline,
    pause,
    request_timeout,
)
from tasks.sinks.encoding import dumps, loads
from tasks.sinks.records import model_labels, modelpulse_fields, time_epoch
from tasks.upstream_errors import answer_summary, bounded

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
HEALTH_PATH = "/services/collector/health"
CHANNEL_HEADER = "X-Splunk-Request-Channel"
MAX_BATCH_BYTES = 1_000_000
BUSY_RETRIES = 5
DEFAULT_ACK_TIMEOUT_SECONDS = 300.0
ACK_RESENDS = 2
# Splunk suggests polling acknowledgements every 10 s; start much sooner and double, since a healthy
# indexer confirms within a second or two and the page's slot in the pipeline waits for it (a
# query is one small request for all of a page's ackIds: about 6 of them in the first 2 s).
ACK_POLL_FIRST_SECONDS = 0.05
ACK_POLL_MAX_SECONDS = 10.0
# Fixed, so that every worker of an export derives the same channel from the export id.
CHANNEL_NAMESPACE = uuid.UUID("6c1f3f0e-9a57-4b8e-8d3c-3f1d2b7a5e10")
SOURCETYPES = {
    "inference_logs": "modelpulse:inference",
    "drift_metrics": "modelpulse:drift",
    "events": "modelpulse:event",
}
TOKEN_CODES = {1: "token disabled", 2: "token required", 3: "invalid authorization", 4: "invalid token"}
DATA_CODES = frozenset({5, 6, 12, 13, 15})
CONFIG_CODES = frozenset({7, 11, 16})
BUSY_CODES = frozenset({8, 9})
CHANNEL_MISSING = 10
ACK_DISABLED = 14

HOW_TO_ENABLE_ACK = (
    "enable it on the token (Splunk Web: Settings > Data inputs > HTTP Event Collector > edit the "
    "token > Enable indexer acknowledgement) or set the export's config.indexer_ack to false"
)


def channel_of(export_id: str) -> str:
    """The export's HEC data channel: a GUID derived from the export id (same in every worker)."""
    return str(uuid.uuid5(CHANNEL_NAMESPACE, export_id))


def probe_channel_of(channel: str) -> str:
    """The channel to probe the acknowledgement endpoint on, beside the export's ``channel``: an
    ``ackId`` HEC reports as confirmed is forgotten, so a probe on the export's own channel could
    take a confirmation a run is waiting for."""
    return str(uuid.uuid5(CHANNEL_NAMESPACE, f"{channel}/probe"))


def longest_page_seconds(target: ExportTarget) -> float:
    """How long `ship_page` may wait for acknowledgements over one page (0 without
    ``indexer_ack``): a page deadline shorter than this cuts the re-sends short."""
    if not target.config.get("indexer_ack"):
        return 0.0
    return (ACK_RESENDS + 1) * _ack_timeout(target)


def encode_events(target: ExportTarget, stream: str, records: list[dict[str, Any]]) -> list[bytes]:
    """Each record as one HEC event, JSON bytes: epoch ``time``, the ModelPulse fields as ``event``,
    ``fields`` (indexed: ``modelpulse.id`` and the model labels), ``host``, ``source``, the stream's
    ``sourcetype`` and the optional ``index``."""
    config = target.config
    envelope: dict[str, str] = {
        "host": config.get("host") or "modelpulse",
        "source": config.get("source") or "modelpulse",
        "sourcetype": SOURCETYPES[stream],
    }
    if config.get("index"):
        envelope["index"] = config["index"]
    # The envelope is the same for every event of the page: encode it once and splice it in.
    tail = b"," + dumps(envelope)[1:]
    return [
        dumps(
            {
                "time": round(time_epoch(stream, record), 3),
                "event": modelpulse_fields(stream, record),
                # Indexed fields must be strings: the id for de-duplication, labels for filtering.
                "fields": {"modelpulse.id": record["record_id"], **model_labels(stream, record)},
            }
        )[:-1]
        + tail
        for record in records
    ]


def batch_spans(events: list[bytes], limit: int = MAX_BATCH_BYTES) -> list[range]:
    """Split encoded events into consecutive runs (index ranges) of at most ``limit`` bytes each."""
    spans: list[range] = []
    start = size = 0
    for index, event in enumerate(events):
        if index > start and size + len(event) > limit:
            spans.append(range(start, index))
            start, size = index, 0
        size += len(event)
    if start < len(events):
        spans.append(range(start, len(events)))
    return spans


def ship_page(
    connection: SplunkHecConnection, target: ExportTarget, stream: str, records: list[dict[str, Any]]
) -> ShipResult:
    """Send one page to HEC in ≤ 1 MB batches and map each reply code (see the module table);
    with ``config.indexer_ack``, return only once HEC confirmed every batch as indexed.

    Safe to call from several threads at once: everything it changes is its own.

    Raises:
        CredentialsRejected: HEC rejected the token (codes 1-4).
        SinkMisconfigured: the export names a wrong index, or ``indexer_ack`` does not match the
            token's indexer acknowledgement setting (codes 7, 10, 11, 14, 16, no ``ackId``).
        SinkUnavailable: HEC stayed busy through the retries, or did not confirm a batch through
            its re-sends.
    """
    started = time.monotonic()
    client = connection.get_client(timeout=request_timeout())
    events = encode_events(target, stream, records)
    result = ShipResult()
    if not target.config.get("indexer_ack"):
        for span in batch_spans(events):
            _send(client, events, records, span, result, None)
        return result
    channel = channel_of(target.export_id)
    pending: dict[int, range] = {}
    for span in batch_spans(events):
        _track(pending, _send(client, events, records, span, result, channel), channel)
    # Past the page deadline the attempt is cut off anyway: stop before, saying why.
    give_up_at = started + page_deadline() - min(1.0, page_deadline() / 10)
    for resends in range(ACK_RESENDS + 1):
        unconfirmed = _await_acks(client, channel, pending, _ack_timeout(target), give_up_at, result)
        if not unconfirmed:
            return result
        if resends == ACK_RESENDS or time.monotonic() >= give_up_at:
            break
        pending = {}
        for span in unconfirmed.values():
            result.retried += len(span)
            _track(pending, _send(client, events, records, span, result, channel), channel)
    waited = (
        f"through {ACK_RESENDS} re-sends, {_ack_timeout(target):g} s after each send (config.ack_timeout_seconds)"
        if time.monotonic() < give_up_at
        else f"before the page deadline ({page_deadline():g} s, MODELPULSE_SINK_PAGE_DEADLINE_SECONDS)"
    )
    raise SinkUnavailable(
        f"Splunk HEC did not confirm {len(unconfirmed)} batch(es) as indexed {waited} "
        f"(ackIds {sorted(unconfirmed)} on channel {channel}); the watermark stays before this page"
    )


def _ack_timeout(target: ExportTarget) -> float:
    return float(target.config.get("ack_timeout_seconds") or DEFAULT_ACK_TIMEOUT_SECONDS)


def _track(pending: dict[int, range], accepted: list[tuple[int, range]], channel: str) -> None:
    for ack_id, span in accepted:
        if ack_id in pending:
            # HEC hands out ackIds in order per channel; a repeat means it reset the channel, and
            # one confirmation could not tell the two batches apart.
            raise SinkUnavailable(f"Splunk HEC handed out ackId {ack_id} twice on channel {channel}")
        pending[ack_id] = span


def _send(
    client: httpx.Client,
    events: list[bytes],
    records: list[dict[str, Any]],
    span: range,
    result: ShipResult,
    channel: str | None,
) -> list[tuple[int, range]]:
    """POST the events of ``span`` (retrying what HEC asks to); return the ``(ackId, events)`` of
    each request HEC accepted. Without a channel (no indexer_ack) accepted events count as shipped."""
    headers = {CHANNEL_HEADER: channel} if channel else None
    accepted: list[tuple[int, range]] = []
    todo = deque([span])
    busy_attempts = 0
    while todo:
        span = todo.popleft()
        response = _post(client, EVENT_PATH, b"".join(events[span.start : span.stop]), headers)
        reply = _reply(response)
        code = reply.get("code")
        if response.status_code == 200 and code in (0, None):
            if channel is None:
                result.shipped += len(span)
            elif isinstance(reply.get("ackId"), int):
                accepted.append((reply["ackId"], span))
            else:
                _raise_no_ack_id(client, channel)
            continue
        _raise_for_settings(code, reply, channel)
        if code in DATA_CODES:
            # HEC indexes the events before the invalid one and drops the rest of the request.
            bad = min(max(int(reply.get("invalid-event-number") or 0), 0), len(span) - 1)
            reason = f"HEC code {code}: {bounded(reply.get('text', 'invalid data'))}"
            result.rejected.append(Rejection(records[span.start + bad]["record_id"], reason, response.status_code))
            if bad and channel is None:
                result.shipped += bad
            elif bad:
                # Those came with no ackId to wait for: send them again in a request that has one.
                result.retried += bad
                todo.append(range(span.start, span.start + bad))
            if span.start + bad + 1 < span.stop:
                todo.append(range(span.start + bad + 1, span.stop))
            continue
        if code in BUSY_CODES or response.status_code in BUSY_STATUSES:
            if busy_attempts >= BUSY_RETRIES:
                raise SinkUnavailable(
                    f"Splunk HEC still busy after {BUSY_RETRIES} retries: {_summary(response)}"
                )
            busy_attempts += 1
            result.retried += len(span)
            pause(backoff_delay(busy_attempts - 1))
            todo.appendleft(span)
            continue
        raise SinkUnavailable(f"Splunk HEC answered {_summary(response)}")
    return accepted


def _raise_for_settings(code: Any, reply: dict[str, Any], channel: str | None) -> None:
    """Raise for the codes no retry can fix: the token (1-4) and the export's settings."""
    if code in TOKEN_CODES:
        raise CredentialsRejected(
            f"Splunk HEC rejected the token (code {code}: {bounded(reply.get('text', TOKEN_CODES[code]))})"
        )
    if code == CHANNEL_MISSING:
        raise SinkMisconfigured(_channel_missing(reply, channel))
    if code == ACK_DISABLED:
        raise SinkMisconfigured(_ack_disabled(reply))
    if code in CONFIG_CODES:
        raise SinkMisconfigured(f"Splunk HEC refused the request (code {code}: {bounded(reply.get('text'))})")


def _raise_no_ack_id(client: httpx.Client, channel: str) -> None:
    """HEC took the events but gave no ackId: ask its acknowledgement endpoint why (code 14 when
    the token has indexer acknowledgement disabled) and raise saying so."""
    _confirmed(client, probe_channel_of(channel), [0])  # raises with HEC's reason when it refuses
    raise SinkMisconfigured(
        "Splunk HEC accepted the events but gave no ackId, so ModelPulse cannot know they were "
        f"indexed: check that indexer acknowledgement is enabled on the HEC token; {HOW_TO_ENABLE_ACK}"
    )


def _channel_missing(reply: dict[str, Any], channel: str | None) -> str:
    said = f"code {CHANNEL_MISSING}: {bounded(reply.get('text', 'Data channel is missing'))}"
    if channel is None:
        return (
            f"Splunk HEC requires a data channel ({said}): indexer acknowledgement is enabled on the "
            "HEC token, so set the export's config.indexer_ack to true (or disable indexer "
            "acknowledgement on the token)"
        )
    return (
        f"Splunk HEC says the data channel is missing ({said}) though ModelPulse sent it in "
        f"{CHANNEL_HEADER}: a proxy in between may drop that header"
    )


def _ack_disabled(reply: dict[str, Any]) -> str:
    said = f"code {ACK_DISABLED}: {bounded(reply.get('text', 'ACK is disabled'))}"
    return f"indexer acknowledgement is disabled on the Splunk HEC token ({said}); {HOW_TO_ENABLE_ACK}"


def _await_acks(
    client: httpx.Client,
    channel: str,
    pending: dict[int, range],
    timeout: float,
    give_up_at: float,
    result: ShipResult,
) -> dict[int, range]:
    """Poll ``/services/collector/ack`` with backoff until every ``ackId`` of ``pending`` is
    confirmed (its events count as shipped) or ``timeout`` passes; return the unconfirmed ones."""
    waiting = dict(pending)
    deadline = min(time.monotonic() + timeout, give_up_at)
    delay = ACK_POLL_FIRST_SECONDS
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        pause(min(delay, left))
        delay = min(delay * 2, ACK_POLL_MAX_SECONDS)
        for ack_id in _confirmed(client, channel, list(waiting)):
            span = waiting.pop(ack_id, None)
            if span is not None:
                result.shipped += len(span)
    return waiting


def _confirmed(client: httpx.Client, channel: str, ack_ids: list[int]) -> list[int]:
    """The ``ackId``s HEC reports as indexed (HEC then forgets them). A busy or unreachable HEC
    confirms nothing this time; settings it refuses raise."""
    try:
        response = client.post(
            ACK_PATH,
            params={"channel": channel},
            content=dumps({"acks": ack_ids}),
            headers={CHANNEL_HEADER: channel},
        )
    except httpx.TransportError:
        return []
    reply = _reply(response)
    acks = reply.get("acks")
    if response.status_code == 200 and isinstance(acks, dict):
        asked = {str(ack_id): ack_id for ack_id in ack_ids}
        return [asked[key] for key, indexed in acks.items() if indexed is True and key in asked]
    code = reply.get("code")
    _raise_for_settings(code, reply, channel)
    if code in BUSY_CODES or response.status_code in BUSY_STATUSES:
        return []
    raise SinkUnavailable(f"Splunk HEC's acknowledgement endpoint answered {_summary(response)}")


def _post(client: httpx.Client, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST to HEC; network failures become ``SinkUnavailable`` saying which, and where."""
    try:
        return client.post(path, content=content, headers=headers)
    except httpx.TimeoutException as error:
        raise SinkUnavailable(
            f"Splunk HEC at {client.base_url} did not answer within {client.timeout.read:g} s"
        ) from error
    except httpx.TransportError as error:
        raise SinkUnavailable(f"cannot reach Splunk HEC at {client.base_url}: {error}") from error


def _summary(response: httpx.Response) -> str:
    """The status and HEC's ``code``/``text``, never the body itself (a proxy's page, say)."""
    return answer_summary("splunk", response.status_code, response.content)


def _reply(response: httpx.Response) -> dict[str, Any]:
    try:
        body = loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def check_connection(connection: SplunkHecConnection, target: ExportTarget) -> list[Check]:
    """HEC health, then the token (an empty event batch: code 5 "No data" means the token is good),
    then whether the token's indexer acknowledgement fits ``config.indexer_ack``."""
    client = connection.get_client(timeout=request_timeout())
    try:
        health = client.get(HEALTH_PATH)
    except httpx.TimeoutException:
        return [Check("reachable", False, f"{connection.hec_url} did not answer within {request_timeout():g} s")]
    except httpx.HTTPError as error:
        return [Check("reachable", False, f"cannot reach {connection.hec_url}: {error}")]
    healthy = health.status_code == 200
    checks = [Check("reachable", healthy, f"HEC health: {_summary(health)}")]
    indexer_ack = bool(target.config.get("indexer_ack"))
    channel = channel_of(target.export_id) if indexer_ack else None
    try:
        probe = _post(client, EVENT_PATH, b"", {CHANNEL_HEADER: channel} if channel else None)
    except SinkUnavailable as error:
        return [*checks, Check("credentials", False, f"token check failed: {error}")]
    reply = _reply(probe)
    code = reply.get("code")
    if code in TOKEN_CODES:
        return [*checks, Check("credentials", False, f"Splunk HEC rejected the token (code {code})")]
    if code == CHANNEL_MISSING:
        # HEC asks for a channel only once it has accepted the token.
        return [
            *checks,
            Check("credentials", True, "HEC accepted the token"),
            Check("indexer_ack", False, _channel_missing(reply, channel)),
        ]
    checks.append(Check("credentials", code in (0, 5), f"HEC answered code {code}"))
    if indexer_ack:
        checks.append(_check_acks(client, probe_channel_of(channel_of(target.export_id))))
    return checks


def _check_acks(client: httpx.Client, channel: str) -> Check:
    """Query an acknowledgement on the probe channel: HEC answers it only if the token has
    indexer acknowledgement enabled."""
    try:
        response = client.post(
            ACK_PATH, params={"channel": channel}, content=dumps({"acks": [0]}), headers={CHANNEL_HEADER: channel}
        )
    except httpx.HTTPError as error:
        return Check("indexer_ack", False, f"cannot query indexer acknowledgements: {error}")
    reply = _reply(response)
    if response.status_code == 200 and isinstance(reply.get("acks"), dict):
        return Check("indexer_ack", True, "HEC answers indexer acknowledgement queries for this token")
    if reply.get("code") == ACK_DISABLED:
        return Check("indexer_ack", False, _ack_disabled(reply))
    return Check("indexer_ack", False, f"HEC's indexer acknowledgement endpoint answered {_summary(response)}")
