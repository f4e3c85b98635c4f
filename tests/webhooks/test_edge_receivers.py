"""Deliveries at the edges: receivers that do not resolve, fail TLS, reset, hang, trickle, redirect,
or answer 10 MB, each sent by the real fan-out (``fanout.fan_out_events`` and its ``Sender``) over
real sockets on loopback.

Every edge case must be one recorded attempt with a clear error, its next attempt scheduled per the
retry schedule (or none, where retrying cannot help), and it must not hold up a healthy delivery of
the same run. The SSRF guard stays on (the production default) except where the test needs
loopback receivers (``MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS``).

These tests fan out in-process on their own database, so the session's webhook dispatcher (which
watches the directory's shared database) never races them for an event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from store.settings import get_settings
from tasks.webhooks import fanout
from tasks.webhooks import sender as webhook_sender
from tasks.webhooks.sender import OriginPool, Sender, SendSummary
from tasks.webhooks.settings import get_webhook_settings
from tests.support.certificates import issued_by_test_ca, self_signed
from tests.support.polling import wait_until
from tests.webhooks.edge_receivers import (
    TEN_MB,
    EdgeReceiver,
    answer_ok,
    huge_answer,
    never_answer,
    redirect,
    reset,
    slow_body,
    trickle,
)
from tests.webhooks.receivers import Receiver

TIMEOUT = 2  # MODELPULSE_WEBHOOK_TIMEOUT_SECONDS here: what a hanging receiver costs an attempt
FIRST_RETRY = 60  # the schedule's first step: longer than the inline-retry window, so it is parked
UNRESOLVABLE = "hook.modelpulse.invalid"  # .invalid never resolves (RFC 6761)


@pytest.fixture
def database_url(sqlite_url) -> str:
    """A database of this test's own (see the module docstring)."""
    return sqlite_url


@pytest.fixture(autouse=True)
def edge_settings(webhook_env, monkeypatch, database_url) -> Iterator[None]:
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELPULSE_WEBHOOK_TIMEOUT_SECONDS", str(TIMEOUT))
    monkeypatch.setenv("MODELPULSE_WEBHOOK_RETRY_SCHEDULE", f"[{FIRST_RETRY}, 300, 1800]")
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()
    yield
    webhook_sender._ssl_context.cache_clear()  # a test may have trusted its own CA


@pytest.fixture
def guard(monkeypatch) -> Callable[[], None]:
    """``guard()`` switches the SSRF guard on for what follows (webhooks on loopback are created
    with it off)."""

    def _on() -> None:
        monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")
        get_settings.cache_clear()

    return _on


@dataclass
class FanOutRun:
    """``fanout.fan_out_events`` on a thread of its own, as the dispatcher's task run calls it."""

    event_ids: list[str]
    database_url: str
    sender: Sender | None = None
    summary: SendSummary | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = asyncio.run(
                fanout.fan_out_events(self.event_ids, sender=self.sender, database_url=self.database_url)
            )
        except BaseException as error:  # noqa: BLE001 - reported by finish()
            self.error = error

    def finish(self) -> SendSummary:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the fan-out run did not finish"
        assert self.error is None, f"the fan-out run failed: {self.error!r}"
        return self.summary


def only(items: list[dict]) -> dict:
    (item,) = items
    return item


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def assert_retry_scheduled(delivery: dict) -> None:
    """Retried per the schedule: parked for the first step after the one recorded attempt."""
    attempt = only(delivery["attempts"])
    assert delivery["status"] == "retrying" and delivery["attempt_count"] == 1
    due = when(delivery["next_attempt_at"]) - when(attempt["attempted_at"])
    assert abs(due - timedelta(seconds=FIRST_RETRY)) < timedelta(seconds=1)
    assert delivery["last_error"] == attempt["error"]


def assert_not_retried(delivery: dict) -> None:
    only(delivery["attempts"])
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None


def attempt_end(attempt: dict) -> datetime:
    return when(attempt["attempted_at"]) + timedelta(milliseconds=attempt["duration_ms"])


# --- each edge case, in a run with a healthy receiver -----------------------------------------

@dataclass(frozen=True)
class Edge:
    """How to set up one misbehaving receiver and what its attempt must record."""

    name: str
    start: Callable[[Any], Any]  # tmp_path -> a context manager with .url
    check: Callable[[dict, Any], None]  # (delivery, receiver) -> assertions
    holds: bool = False  # the receiver keeps the attempt busy until the deadline


def _tls_self_signed(tmp_path):
    return EdgeReceiver(answer_ok, tls=self_signed(tmp_path, ["127.0.0.1"]).server_context())


def _tls_wrong_host(tmp_path):
    # A certificate our (test) CA vouches for, but for another name than the one the URL uses.
    files = issued_by_test_ca(tmp_path, ["wrong-host.example"])
    return EdgeReceiver(answer_ok, tls=files.server_context(), host="localhost", trusted_ca=files.ca)


def _unresolvable(tmp_path):
    return _Unresolvable()


class _Unresolvable:
    """Nothing to start: the receiver's name does not resolve."""

    url = f"http://{UNRESOLVABLE}:8080/hook"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _check_unresolvable(delivery, receiver):
    assert only(delivery["attempts"])["error"] == f"could not resolve host {UNRESOLVABLE}"
    assert only(delivery["attempts"])["response_status"] is None
    assert_retry_scheduled(delivery)


def _check_self_signed(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert attempt["error"] == "TLS certificate rejected: self-signed certificate"
    assert attempt["response_status"] is None and receiver.requests == 0
    assert_retry_scheduled(delivery)


def _check_wrong_host(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert attempt["error"].startswith("TLS certificate rejected: Hostname mismatch")
    assert "'localhost'" in attempt["error"]
    assert receiver.requests == 0
    assert_retry_scheduled(delivery)


def _check_reset(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert attempt["error"] == "connection reset by the receiver before it answered"
    assert attempt["response_status"] is None and receiver.requests == 1
    assert_retry_scheduled(delivery)


def _check_timeout(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert attempt["error"] == f"timeout: no answer within {TIMEOUT} s"
    assert attempt["response_status"] is None
    assert not receiver.finished  # it was still hanging or trickling when the attempt gave up
    assert_retry_scheduled(delivery)


def _check_slow_body(delivery, receiver):
    # The status came in time and decides; the body is what had arrived at the deadline.
    attempt = only(delivery["attempts"])
    assert delivery["status"] == "succeeded" and attempt["response_status"] == 200
    arrived, _, note = attempt["response_body"].partition("\n")
    assert "thanks, got it".startswith(arrived) and len(arrived) < len("thanks, got it")
    assert note == f"[incomplete: {len(arrived)} of 14 bytes had arrived when the {TIMEOUT} s deadline passed]"
    assert not receiver.finished


def _check_redirect(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert attempt["response_status"] == 302
    assert attempt["error"] == (
        "HTTP 302: redirect to https://elsewhere.example/hook not followed; set the webhook's URL to it"
    )
    assert_not_retried(delivery)


def _check_huge_ok(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert delivery["status"] == "succeeded" and attempt["response_status"] == 200
    kept, _, note = attempt["response_body"].partition("\n")
    assert kept == "x" * 1024
    assert note == f"[truncated: kept the first 1024 of {TEN_MB} bytes (Content-Length)]"
    assert not receiver.finished  # the sender stopped reading long before 10 MB


def _check_huge_error(delivery, receiver):
    attempt = only(delivery["attempts"])
    assert attempt["response_status"] == 503 and attempt["error"] == "HTTP 503"
    kept, _, note = attempt["response_body"].partition("\n")
    assert kept == "x" * 1024
    assert note.startswith("[truncated: kept the first 1024 bytes; stopped reading after ")
    assert note.endswith(" (no Content-Length)]")
    assert not receiver.finished
    assert_retry_scheduled(delivery)


EDGES = [
    Edge("unresolvable host", _unresolvable, _check_unresolvable),
    Edge("self-signed TLS", _tls_self_signed, _check_self_signed),
    Edge("TLS for another host", _tls_wrong_host, _check_wrong_host),
    Edge("connection reset", lambda _: EdgeReceiver(reset), _check_reset),
    Edge("never answers", lambda _: EdgeReceiver(never_answer), _check_timeout, holds=True),
    Edge("trickles a byte at a time", lambda _: EdgeReceiver(trickle, interval=0.5), _check_timeout, holds=True),
    Edge("answers, then trickles the body", lambda _: EdgeReceiver(slow_body, interval=0.5), _check_slow_body,
         holds=True),
    Edge(
        "redirect",
        lambda _: EdgeReceiver(redirect, location="https://elsewhere.example/hook"),
        _check_redirect,
    ),
    Edge("10 MB answer", lambda _: EdgeReceiver(huge_answer), _check_huge_ok),
    Edge(
        "10 MB error answer, chunked",
        lambda _: EdgeReceiver(huge_answer, status=503, chunked=True),
        _check_huge_error,
    ),
]


@pytest.mark.parametrize("edge", EDGES, ids=[edge.name for edge in EDGES])
def test_an_edge_case_is_a_recorded_attempt_and_does_not_hold_up_a_healthy_delivery(
    edge, tmp_path, monkeypatch, database_url, create_webhook, publish, history
):
    with edge.start(tmp_path) as bad, Receiver() as healthy:
        if trusted_ca := getattr(bad, "options", {}).get("trusted_ca"):
            # How an operator trusts a private CA: the standard variable, read by httpx's context.
            monkeypatch.setenv("SSL_CERT_FILE", str(trusted_ca))
            webhook_sender._ssl_context.cache_clear()
        bad_hook = create_webhook(bad.url)
        healthy_hook = create_webhook(healthy.url)
        event_id = publish()

        run = FanOutRun([event_id], database_url)
        healthy_delivery = wait_until(
            lambda: [d for d in history(healthy_hook["id"]) if d["status"] == "succeeded"],
            what="the healthy delivery",
        )[0]
        summary = run.finish()

        bad_delivery = only(history(bad_hook["id"]))
        edge.check(bad_delivery, bad)
    assert summary.deliveries == 2 and summary.succeeded >= 1
    assert len(healthy.received) == 1
    assert only(healthy_delivery["attempts"])["response_status"] == 200
    if edge.holds:
        # The healthy attempt was over before the bad one gave up: they were sent side by side.
        assert attempt_end(only(healthy_delivery["attempts"])) < attempt_end(only(bad_delivery["attempts"]))


# --- the reported bug: DNS failure with the guard on ------------------------------------------

def test_an_unresolvable_host_with_the_guard_on_is_an_attempt_retried_on_the_schedule(
    guard, database_url, create_webhook, publish, history
):
    """The production default: the guard resolves the name itself, and a failed lookup is an attempt."""
    with Receiver() as loopback:
        lost = create_webhook(f"https://{UNRESOLVABLE}/hook")
        # Saved while loopback was allowed; with the guard on it is refused at connect time.
        refused = create_webhook(loopback.url)
        event_id = publish()
        guard()

        summary = FanOutRun([event_id], database_url).finish()

    assert (summary.deliveries, summary.retrying, summary.failed) == (2, 1, 1)
    delivery = only(history(lost["id"]))
    assert only(delivery["attempts"])["error"] == f"could not resolve host {UNRESOLVABLE}"
    assert_retry_scheduled(delivery)
    refused_delivery = only(history(refused["id"]))
    assert "loopback" in only(refused_delivery["attempts"])["error"]
    assert_not_retried(refused_delivery)
    assert loopback.received == []


def test_the_retry_of_an_unresolvable_host_is_another_recorded_attempt(
    guard, database_url, create_webhook, publish, history
):
    guard()
    webhook = create_webhook(f"https://{UNRESOLVABLE}/hook")
    event_id = publish()
    FanOutRun([event_id], database_url).finish()
    first = only(history(webhook["id"]))

    due = when(first["next_attempt_at"])
    summary = asyncio.run(fanout.retry_due_deliveries(now=due + timedelta(seconds=1), database_url=database_url))

    assert summary.deliveries == 1 and summary.retrying == 1
    delivery = only(history(webhook["id"]))
    assert delivery["attempt_count"] == 2 and delivery["status"] == "retrying"
    assert [a["trigger"] for a in delivery["attempts"]] == ["initial", "retry"]
    assert {a["error"] for a in delivery["attempts"]} == {f"could not resolve host {UNRESOLVABLE}"}
    second_due = when(delivery["next_attempt_at"]) - when(delivery["attempts"][-1]["attempted_at"])
    assert abs(second_due - timedelta(seconds=300)) < timedelta(seconds=1)


# --- an error nobody planned for stays with its delivery -------------------------------------

class _BrokenTransportSender(Sender):
    """A sender whose HTTP transport raises a non-network error for one receiver (a library bug,
    say) and answers 200 for the others; everything above the transport is the real fan-out."""

    def __init__(self, broken_url: str) -> None:
        super().__init__(get_webhook_settings())
        self.broken_url = broken_url

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == self.broken_url:
            raise RuntimeError("the transport fell over")
        return httpx.Response(200, stream=httpx.ByteStream(b"ok"))

    @asynccontextmanager
    async def pool_for(self, url: str) -> AsyncIterator[OriginPool]:
        yield OriginPool(httpx.MockTransport(self._answer))


def test_an_unexpected_error_in_one_attempt_fails_that_delivery_only(
    database_url, create_webhook, publish, history
):
    broken = create_webhook("https://broken.example/hook")
    fine = create_webhook("https://fine.example/hook")
    event_id = publish()

    summary = FanOutRun([event_id], database_url, sender=_BrokenTransportSender(broken["url"])).finish()

    assert (summary.deliveries, summary.succeeded, summary.retrying) == (2, 1, 1)
    delivery = only(history(broken["id"]))
    assert only(delivery["attempts"])["error"] == "unexpected error: RuntimeError: the transport fell over"
    assert_retry_scheduled(delivery)
    assert only(history(fine["id"]))["status"] == "succeeded"


def test_custom_header_values_beyond_ascii_are_sent_as_utf8(database_url, create_webhook, publish, history):
    with Receiver() as receiver:
        webhook = create_webhook(receiver.url, headers={"X-Team": "Zürich ✓"})
        FanOutRun([publish()], database_url).finish()
    assert only(history(webhook["id"]))["status"] == "succeeded"
    # http.server decodes header bytes as Latin-1; the bytes on the wire were UTF-8.
    assert receiver.received[0].headers["x-team"].encode("latin-1").decode() == "Zürich ✓"
