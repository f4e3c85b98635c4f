"""Losing a process of the production shape loses no work: a webhook dispatcher killed with SIGKILL
in the middle of a burst of events.

What the dispatcher held is taken over: events it had not yet claimed by the other dispatchers (and
its own restart), deliveries it had claimed by the retry sweep once their lease ran out. The one killed
is the dispatcher that reads the outbox: the other helps only while events wait, and may hold nothing. Receivers may
see a delivery twice, always under the same ``webhook-id``.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from tests.production.traffic import (
    delivery_timings,
    event_body,
    prefect_runs_since,
    sweep_interval_seconds,
)
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver, Reply

pytestmark = [pytest.mark.production, pytest.mark.timeout(600)]

EVENTS = 500
WEBHOOKS = 5
# Short leases so the sweep takes over within the test (production: 15 s timeout, 60 s margin).
TIMEOUT_SECONDS = 5.0
INLINE_RETRY_SECONDS = 2.0
LEASE_MARGIN_SECONDS = 5.0
# The dispatcher's defaults (flows/fan_out.py): events per fan-out run, and WebhookSettings.concurrency.
BATCH_SIZE = 50
CONCURRENCY = 100
# Receivers hold every answer this long, so a dispatcher always has deliveries in flight.
RECEIVER_HOLD_SECONDS = 0.5
# Beyond lease + sweep interval: the sweep's flow run starting on a worker (poll, process start,
# imports on a busy 2-core machine) and sending what it took over.
SWEEP_START_SLACK_SECONDS = 45.0


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    return {
        "MODELPULSE_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "MODELPULSE_WEBHOOK_INLINE_RETRY_SECONDS": str(INLINE_RETRY_SECONDS),
        "MODELPULSE_WEBHOOK_LEASE_MARGIN_SECONDS": str(LEASE_MARGIN_SECONDS),
    }


READS = "this dispatcher reads the outbox as events are committed"


def _dispatcher_logs(machine) -> str:
    logs = (machine.home / "logs").glob("webhook-dispatcher-*.log")
    return "".join(path.read_text(errors="replace") for path in logs)


def longest_lease_seconds() -> float:
    """The lease of a full fan-out run (tasks/webhooks/fanout.py, ``_lease_until``)."""
    rounds = math.ceil(BATCH_SIZE * WEBHOOKS / CONCURRENCY)
    return rounds * TIMEOUT_SECONDS + INLINE_RETRY_SECONDS + LEASE_MARGIN_SECONDS


def test_dispatcher_killed_mid_burst_loses_no_delivery(cluster):
    apis = [cluster.api(machine) for machine in cluster.machines]
    held = threading.Event()  # never set while the test runs: every answer waits its hold
    with ExitStack() as stack:
        receivers = [
            stack.enter_context(Receiver(Reply(hold=held, hold_seconds=RECEIVER_HOLD_SECONDS)))
            for _ in range(WEBHOOKS)
        ]
        for receiver in receivers:
            # The killed dispatcher's connections break mid-answer: expected, not worth a traceback each.
            receiver.server.handle_error = lambda request, address: None
        secrets = []
        for n, receiver in enumerate(receivers):
            hook = apis[n % 2].post(
                "/organizations/default/webhooks",
                json={"name": f"burst-{n}", "url": receiver.url, "events": ["threshold.breached"]},
            )
            assert hook.status_code == 201, hook.text
            secrets.append(hook.json()["signing_secret"])

        def post(n: int) -> str:
            response = apis[n % 2].post("/organizations/default/events", json=event_body("threshold.breached", n=n))
            assert response.status_code == 202, response.text
            return response.json()["id"]

        def received() -> int:
            return sum(len(receiver.received) for receiver in receivers)

        # The dispatcher that reads the outbox (flows/fan_out.py, the outbox-reader role) claims what it
        # finds; the other only helps while events wait. Killed is the reader, mid-fan-out.
        victim = wait_until(
            lambda: [machine for machine in cluster.machines if READS in _dispatcher_logs(machine)],
            60, "one dispatcher to say it reads the outbox",
        )[0]  # fmt: skip
        (dispatcher,) = victim.processes("flows.fan_out")
        with ThreadPoolExecutor(8) as pool:
            posted = pool.map(post, range(EVENTS))
            # Mid-burst: deliveries are arriving (and held), events are still being posted.
            wait_until(lambda: received() >= EVENTS // 2, 120, "the burst's first deliveries")
            killed = victim.kill("flows.fan_out")
            event_ids = set(posted)
        assert killed == [dispatcher]
        assert len(event_ids) == EVENTS

        # `up` starts the killed dispatcher again.
        wait_until(
            lambda: [pid for pid in victim.processes("flows.fan_out") if pid != dispatcher],
            60,
            "the dispatcher restarted by `up`",
        )

        lease, sweep = longest_lease_seconds(), sweep_interval_seconds()
        bound = lease + sweep + SWEEP_START_SLACK_SECONDS
        for receiver in receivers:
            wait_until(
                lambda receiver=receiver: {r.headers["webhook-id"] for r in list(receiver.received)} >= event_ids,
                bound + 60,
                "every event at every receiver",
            )
        timings = wait_until(
            lambda: (rows := delivery_timings(cluster.database_url))
            and len(rows) == EVENTS * WEBHOOKS
            and all(row.status == "succeeded" for row in rows)
            and rows,
            120,
            "every delivery recorded as succeeded",
            every=1.0,
        )

    # Every receiver got every event; a repeat is signed and carries the event's id as webhook-id.
    duplicates = 0
    for receiver, secret in zip(receivers, secrets, strict=True):
        seen: dict[str, int] = {}
        for record in receiver.received:
            payload = record.verify(secret)
            assert record.headers["webhook-id"] == payload["id"]
            seen[payload["id"]] = seen.get(payload["id"], 0) + 1
        assert set(seen) == event_ids
        duplicates += sum(count - 1 for count in seen.values())

    # The killed dispatcher's deliveries were taken over by the sweep, none later than lease + sweep.
    taken_over = [row for row in timings if row.first_trigger == "retry"]
    longest = max(timings, key=lambda row: row.pending_seconds)
    # What the Prefect UI shows of the killed process's fan-outs (reported: Prefect's bookkeeping).
    left_running = prefect_runs_since(
        cluster.prefect_api_url, "task_runs", None, name={"like_": "fan-out-"}, state={"type": {"any_": ["RUNNING"]}}
    )
    print(
        f"\n{len(timings)} deliveries; {len(taken_over)} first sent by the sweep; {duplicates} received twice; "
        f"longest pending {longest.pending_seconds:.1f} s (bound {bound:.0f} s: lease {lease:.0f} + sweep "
        f"{sweep:.0f} + start {SWEEP_START_SLACK_SECONDS:.0f}); {len(left_running)} fan-out-events runs left "
        "Running in Prefect"
    )
    assert taken_over, "the killed dispatcher held no delivery: the kill did not land mid-fan-out"
    assert longest.pending_seconds <= bound, longest
    # The dispatchers that kept running and the restarted one are up.
    assert all(machine.processes("flows.fan_out") for machine in cluster.machines)
