"""One delivery attempt: sign, POST, classify the outcome, and decide what happens next.

Nothing here touches the database; ``tasks.webhooks.sender`` records what ``send_attempt`` returns.
The body is the webhook's format's rendering of the event (``tasks.webhooks.formats``); only the
``standard`` format is signed, and each format classifies its receiver's answer (a Slack
``no_service`` disables the webhook like a 410). Network failures are the same for every format.
What an attempt records when the receiver misbehaves (``error``; ``retry`` = on the schedule)::

    host does not resolve       could not resolve host <name>                          retry
    connection refused          connection refused by <host>:<port>                    retry
    TLS certificate refused     TLS certificate rejected: <why, e.g. self-signed ...>  retry
    other TLS failure           TLS handshake with <host>:<port> failed: <reason>      retry
    connection reset            connection reset by the receiver before it answered    retry
    hung up without answering   the receiver closed the connection without answering   retry
    no answer within timeout    timeout: no answer within <timeout> s                  retry
      (hung, or trickling: the whole attempt has one deadline)
    redirect (3xx)              HTTP <status>: redirect to <Location> not followed...  failed
    address refused (SSRF)      refused to connect to <host>: <address> is a ...       failed
    body larger than kept       the status decides; response_body ends with
                                "[truncated: kept the first 1024 of <n> bytes ...]"
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from blocks.egress import HostNotResolved, TargetRefused
from tasks.webhooks.formats import get_format
from tasks.webhooks.formats.base import Outcome, encode_json, http_outcome
from tasks.webhooks.signing import signature_header

MASK = "********"
BODY_KEEP_BYTES = 1024
# Our headers win over a webhook's custom headers of the same name.
PROTECTED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent"}
)


@dataclass
class Target:
    """Everything needed to send one delivery; ``secrets``, ``headers`` and ``body`` (a PagerDuty body
    carries the routing key) are never stored."""

    delivery_id: str
    webhook_id: str
    url: str
    message_id: str  # the event id: `webhook-id`, constant across retries and redeliveries
    body: bytes
    secrets: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    attempts_made: int = 0
    scheduled: bool = False  # a retry is already scheduled (a manual attempt leaves it be)
    scheduled_at: datetime | None = None  # its due time, when a claim moved it (recover puts it back)
    secrets_version: datetime | None = None  # the webhook row's updated_at: secrets are cached per version
    format: str = "standard"  # how the event is rendered and the answer judged (tasks.webhooks.formats)
    event: dict[str, Any] | None = None  # the event's wire form, rendered once the secrets are loaded
    webhook_name: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the format's options (severity, source)
    hidden: list[str] = field(default_factory=list)  # other secrets (a secret URL, a routing key) kept out of logs
    organization_id: str = ""


@dataclass
class AttemptResult:
    """What one attempt did, in the shape the history shows (secrets already masked)."""

    delivery_id: str
    webhook_id: str
    trigger: str
    attempted_at: datetime
    request_headers: dict[str, str]
    duration_ms: float
    outcome: Outcome
    response_status: int | None = None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None
    location: str | None = None  # a redirect's Location header
    timed_out: bool = False
    refused: bool = False  # the egress policy refused the address: nothing was sent
    disable_reason: str | None = None  # "gone": the webhook.disabled reason code (gone, no_service...)
    disable_detail: str | None = None  # "gone": the webhook's disabled_reason in words

    def record_fields(self) -> dict[str, Any]:
        """The columns of the attempt row."""
        return {
            "attempted_at": self.attempted_at,
            "trigger": self.trigger,
            "request_headers": self.request_headers,
            "response_status": self.response_status,
            "response_body": self.response_body,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "succeeded": self.outcome == "succeeded",
        }


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (the ``standard`` format's body)."""
    return encode_json(payload)


def build_headers(target: Target, timestamp: int, user_agent: str) -> dict[str, str]:
    """Custom headers first, then ours, which a custom header of the same name cannot replace.

    Only a signed format (``standard``) carries the Standard Webhooks headers; Slack, Teams and
    PagerDuty are unsigned by their own protocols (their URL or routing key is the secret).
    """
    headers = {
        name: value
        for name, value in target.headers.items()
        if name.lower() not in PROTECTED_HEADERS
    }
    headers.update({"content-type": "application/json", "user-agent": user_agent})
    if get_format(target.format).SIGNED:
        headers.update(
            {
                "webhook-id": target.message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(
                    target.secrets, target.message_id, timestamp, target.body
                ),
            }
        )
    return headers


def masked(headers: dict[str, str]) -> dict[str, str]:
    """The headers as the history shows them: custom header values hidden."""
    return {
        name.lower(): value if name.lower() in PROTECTED_HEADERS else MASK
        for name, value in headers.items()
    }


async def send_attempt(
    transport: httpx.AsyncBaseTransport, target: Target, trigger: str, timeout: float, user_agent: str
) -> AttemptResult:
    """POST the signed payload once and classify the answer. Never raises for network trouble.

    The whole attempt (name lookup, connect, TLS, request, status and the part of the body that is
    kept) has one deadline, ``timeout``: a receiver trickling a byte a second defeats a per-read
    timeout, not this one. What each failure records is in the module's error table.

    Example:
        ```python
        result = await send_attempt(transport, target, "initial", timeout=15, user_agent="ModelPulse")
        result.outcome  # "succeeded" | "retry" | "failed" | "gone"
        ```
    """
    attempted_at = datetime.now(UTC)
    headers = build_headers(target, int(attempted_at.timestamp()), user_agent)
    result = AttemptResult(
        delivery_id=target.delivery_id,
        webhook_id=target.webhook_id,
        trigger=trigger,
        attempted_at=attempted_at,
        request_headers=masked(headers),
        duration_ms=0.0,
        outcome="retry",
    )
    body = BodyKept()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await _exchange(transport, target, headers, timeout, result, body)
    except (TimeoutError, httpx.TimeoutException) as error:
        result.timed_out = True
        if result.response_status is None:
            result.error = _timeout_error(error, target.url, timeout)
        else:  # the status came in time; only the (kept part of the) body did not
            body.incomplete_after = timeout
    except httpx.InvalidURL as error:
        result.outcome = "failed"
        result.error = f"invalid URL: {error}"
    except httpx.HTTPError as error:
        result.error = transport_error(error, target.url)
        result.refused = _cause(error, TargetRefused) is not None
        if isinstance(error, httpx.UnsupportedProtocol) or result.refused:
            result.outcome = "failed"
    result.duration_ms = (time.perf_counter() - started) * 1000
    if result.response_status is not None:
        result.response_body = body.text()
        verdict = get_format(target.format).classify(result.response_status, body.kept_text())
        result.outcome = verdict.outcome
        result.disable_reason, result.disable_detail = verdict.disable_reason, verdict.disable_detail
        if 300 <= result.response_status < 400:
            result.error = redirect_error(result.response_status, result.location)
        elif result.outcome != "succeeded":
            result.error = verdict.error or f"HTTP {result.response_status}"
    for secret in target.hidden:  # an error or an answer quoting a secret URL or routing key
        if secret:
            result.error = result.error.replace(secret, MASK) if result.error else result.error
            result.response_body = result.response_body.replace(secret, MASK) if result.response_body else None
    return result


async def _exchange(
    transport: httpx.AsyncBaseTransport,
    target: Target,
    headers: dict[str, str],
    timeout: float,
    result: AttemptResult,
    body: BodyKept,
) -> None:
    # Straight to the connection pool (the transport), without an ``httpx.AsyncClient``: a client's
    # merging of defaults, cookie jar, auth and redirect steps cost a fifth of each request's CPU, and a
    # delivery uses none of them (nothing is followed, nothing is kept between requests).
    request = httpx.Request(
        "POST", target.url, content=target.body, headers=_wire_headers(headers),
        extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
    )  # fmt: skip
    response = await transport.handle_async_request(request)
    try:
        result.response_status = response.status_code
        result.retry_after = retry_after_seconds(response.headers.get("retry-after"))
        result.location = response.headers.get("location")
        body.announced = _content_length(response.headers.get("content-length"))
        async for chunk in response.aiter_raw():
            if body.add(chunk):
                break  # enough kept: closing the response drops the connection and the rest
    finally:
        await response.aclose()


def _wire_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The request's headers as sent: what an httpx client adds by default (unless set), then ``headers``
    (values as UTF-8: httpx would refuse anything beyond ASCII), and the body asked for raw and
    uncompressed, so no compressed answer can expand past what is read."""
    names = {name.lower() for name in headers}
    wire = [(name, value) for name, value in _CLIENT_DEFAULTS if name.decode() not in names]
    wire += [(name.encode(), value.encode()) for name, value in headers.items() if name.lower() != "accept-encoding"]
    wire.append((b"accept-encoding", b"identity"))
    return wire


_CLIENT_DEFAULTS = ((b"accept", b"*/*"), (b"connection", b"keep-alive"))


@dataclass
class BodyKept:
    """The part of a response body that history keeps, and what is known of the rest."""

    kept: bytearray = field(default_factory=bytearray)
    observed: int = 0  # bytes read off the wire
    announced: int | None = None  # Content-Length, when the receiver sent one
    cut: bool = False  # reading stopped before the body ended
    incomplete_after: float | None = None  # the deadline passed while the body was arriving

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; ``True`` once more arrived than is kept (stop reading)."""
        self.observed += len(chunk)
        self.kept += chunk[: max(0, BODY_KEEP_BYTES - len(self.kept))]
        self.cut = self.observed > BODY_KEEP_BYTES
        return self.cut

    def kept_text(self) -> str:
        """The kept bytes as text (what a format reads to classify the answer)."""
        return bytes(self.kept).decode("utf-8", errors="replace")

    def text(self) -> str:
        """The kept bytes as text, with a note when the body was cut short or did not finish."""
        text = self.kept_text()
        if self.cut:
            size = (
                f"of {self.announced} bytes (Content-Length)"
                if self.announced is not None
                else f"bytes; stopped reading after {self.observed} (no Content-Length)"
            )
            text += f"\n[truncated: kept the first {len(self.kept)} {size}]"
        elif self.incomplete_after is not None:
            expected = f" of {self.announced}" if self.announced is not None else ""
            text += (
                f"\n[incomplete: {self.observed}{expected} bytes had arrived when the "
                f"{self.incomplete_after:g} s deadline passed]"
            )
        return text


def _content_length(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _cause(error: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kind`` in ``error``'s chain of causes (httpx -> httpcore -> OS)."""
    seen: BaseException | None = error
    for _ in range(20):  # chains are short; the bound only guards against a cycle
        if seen is None or isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _host_port(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", str(port or (443 if parts.scheme == "https" else 80))


def transport_error(error: httpx.HTTPError, url: str) -> str:
    """A network failure in words: which step failed and why (see the module's error table)."""
    host, port = _host_port(url)
    if refused := _cause(error, TargetRefused):
        return str(refused)
    if _cause(error, (HostNotResolved, socket.gaierror)):
        return f"could not resolve host {host}"
    if certificate := _cause(error, ssl.SSLCertVerificationError):
        reason = certificate.verify_message or certificate.reason or str(certificate)
        return f"TLS certificate rejected: {reason}"
    if tls := _cause(error, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {tls.reason or tls}"
    if _cause(error, ConnectionRefusedError):
        return f"connection refused by {host}:{port}"
    if _cause(error, ConnectionResetError) or _cause(error, BrokenPipeError):
        return "connection reset by the receiver before it answered"
    if isinstance(error, httpx.RemoteProtocolError):
        if "without sending" in str(error) or "disconnected" in str(error).lower():
            return "the receiver closed the connection without answering"
        return f"the receiver's answer is not valid HTTP: {error}"
    if isinstance(error, httpx.UnsupportedProtocol):
        return f"unsupported URL: {error}"
    if isinstance(error, httpx.ConnectError):
        return f"could not connect to {host}:{port}: {error}"
    return f"{type(error).__name__}: {error}"


def _timeout_error(error: BaseException, url: str, timeout: float) -> str:
    host, port = _host_port(url)
    if isinstance(error, httpx.ConnectTimeout) or isinstance(error, httpx.PoolTimeout):
        return f"timeout: could not connect to {host}:{port} within {timeout:g} s"
    return f"timeout: no answer within {timeout:g} s"


def redirect_error(status: int, location: str | None) -> str:
    """A redirect is never followed: it means the webhook's URL is not the receiver's (see README)."""
    if not location:
        return f"HTTP {status}: a redirect without a Location header (not followed)"
    return f"HTTP {status}: redirect to {location[:500]} not followed; set the webhook's URL to it"


def classify_status(status: int) -> Outcome:
    """The ``standard`` format's reading of a status (see ``formats.base.http_outcome``)."""
    return http_outcome(status)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (it may be seconds or an HTTP date); ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_delay(attempts_made: int, retry_after: float | None, schedule: list[float]) -> float | None:
    """Seconds until the next retry after ``attempts_made`` attempts, or ``None`` when exhausted.

    ``Retry-After`` can push a retry later than the schedule says (never earlier), but no further
    than the schedule's longest step, so a receiver cannot park a delivery forever.
    """
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1]
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def next_due(now: datetime, delay: float) -> datetime:
    return now + timedelta(seconds=delay)
