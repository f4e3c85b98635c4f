"""Webhook fan-out benchmark: ModelPulse beside a plain asyncio + httpx loop, in the same run.

1. One event to N loopback receivers (default 1,000): wall time of ModelPulse's fan-out unit
   (claim the event, match webhooks, create deliveries, load the signing secrets from Prefect,
   send concurrently, record every attempt) against a plain loop that only signs and posts the
   same payloads with the same concurrency bound. Goal: ratio <= 1.5.
2. Event accepted -> first attempt at the receiver, at R events/s (default 20) to 5 receivers each,
   through the real stack: gunicorn-served API, outbox, the webhook dispatcher (``python -m
   flows.fan_out``) and its ``fan-out-events`` Prefect task runs. Goal: p50 < 250 ms, p99 < 1 s.
   The plain loop's events of part 1 (``--repeats`` + 1) are outbox rows nobody claimed: the
   dispatcher fans them out to the N receivers as soon as it starts, before the warm-up event, so
   this part measures a dispatcher that has just sent (repeats + 1) x N deliveries (issue 22).

Everything runs on loopback: a Prefect server (SQLite), the API under gunicorn, the dispatcher (started
after part 1, which fans out in this process) and a receiver process listening on N ports. Usage::

    PYTHONPATH=. python bench/webhook_fanout.py [--receivers 1000] [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process_cpu import tree_cpu_seconds  # noqa: E402
from bench.webhook_load import Receivers, create_webhooks, offer_events, percentile, warm_up  # noqa: E402

# --- setup ------------------------------------------------------------------------------------


def _environment(workdir: Path) -> dict[str, str]:
    from tests.support.servers import free_port

    prefect_port, api_port = free_port(), free_port()
    env = {
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(prefect_port),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{workdir / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(workdir / "prefect" / "storage"),
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "MODELPULSE_HOME": str(workdir),
        "MODELPULSE_DATABASE_URL": f"sqlite:///{workdir / 'modelpulse.db'}",
        "MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "MODELPULSE_API_PORT": str(api_port),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    return dict(os.environ)


class Stack:
    """The processes of the run; stopped in reverse order whatever happens."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.processes: dict[str, subprocess.Popen] = {}  # by name, in start order

    def start(self, name: str, argv: list[str], ready_url: str | None = None) -> subprocess.Popen:
        from tests.support.servers import start_process, wait_until_ready

        process = start_process(argv, self.workdir / f"{name}.log", env=self.env, cwd=ROOT)
        self.processes[name] = process
        if ready_url:
            wait_until_ready(ready_url, process, timeout=300)
        return process

    def start_prefect_and_api(self, *organizations: str) -> tuple[str, list[str]]:
        """A Prefect server, the database migrated and the block types registered, an API key per
        organization, then the API under gunicorn (2 workers, as ``up``); returns its URL and the keys."""
        self.start(
            "prefect-server",
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", self.env["PREFECT_SERVER_API_PORT"]],
            ready_url=self.env["PREFECT_API_URL"] + "/health",
        )
        from blocks.connections import register_block_types
        from store.db import session_scope
        from store.migrate import upgrade
        from store.organizations import create_api_key

        upgrade()
        register_block_types()
        with session_scope() as session:
            keys = [create_api_key(session, organization) for organization in organizations]
        api = f"http://127.0.0.1:{self.env['MODELPULSE_API_PORT']}"
        self.start(
            "api",
            [sys.executable, "-m", "gunicorn", "--no-control-socket", "api.wsgi:app",
             "--bind", api.removeprefix("http://"), "--workers", "2", "--threads", "4"],
            ready_url=f"{api}/health",
        )
        return api, keys

    def cpu_seconds(self) -> dict[str, float]:
        return {name: tree_cpu_seconds(process.pid) for name, process in self.processes.items()}

    def stop(self) -> None:
        from tests.support.servers import stop_process

        for process in reversed(self.processes.values()):
            stop_process(process)


def _cpu_by_process(stack: Stack) -> dict[str, float]:
    # This process's own threads only: its children (the stack, the receivers) are counted apart.
    return stack.cpu_seconds() | {"benchmark client": sum(os.times()[:2])}


# --- part 1: one event to N receivers ---------------------------------------------------------


def _new_event(organization: str, event_type: str) -> tuple[str, bytes]:
    from store.db import session_scope
    from store.events import event_payload, record_event
    from tasks.webhooks.delivery import encode_payload

    # The dispatcher is not running yet, so the event waits for us.
    with session_scope() as session:
        event = record_event(session, organization, event_type, {"model": "churn", "metric": "psi", "value": 0.4})
    return event.id, encode_payload(event_payload(event))


async def _plain_loop(urls: list[str], secrets: list[str], event_id: str, body: bytes, concurrency: int) -> int:
    """The baseline: sign and POST with httpx, bounded like ModelPulse, nothing recorded."""
    import httpx

    from tasks.webhooks.signing import signature_header

    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def post(client: httpx.AsyncClient, url: str, secret: str) -> bool:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header([secret], event_id, timestamp, body),
        }
        async with slots:
            response = await client.post(url, content=body, headers=headers, timeout=15)
        return response.is_success

    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        results = await asyncio.gather(*(post(client, u, s) for u, s in zip(urls, secrets, strict=False)))
    return sum(results)


def bench_fan_out(api: str, key: str, urls: list[str], repeats: int) -> dict[str, object]:
    from tasks.webhooks.fanout import fan_out_events
    from tasks.webhooks.settings import get_webhook_settings

    organization = "bench-fanout"
    secrets = create_webhooks(api, key, organization, urls, "threshold.breached")
    concurrency = get_webhook_settings().concurrency
    ours, plain = [], []
    for round_ in range(repeats + 1):  # round 0 warms both up and is not counted
        event_id, _ = _new_event(organization, "threshold.breached")
        started = time.perf_counter()
        summary = asyncio.run(fan_out_events([event_id]))
        elapsed = time.perf_counter() - started
        assert summary.succeeded == len(urls), summary
        event_id, body = _new_event(organization, "threshold.breached")
        started = time.perf_counter()
        delivered = asyncio.run(_plain_loop(urls, secrets, event_id, body, concurrency))
        plain_elapsed = time.perf_counter() - started
        assert delivered == len(urls)
        if round_:
            ours.append(elapsed)
            plain.append(plain_elapsed)
    return {
        "receivers": len(urls),
        "concurrency": concurrency,
        "modelpulse_s": statistics.median(ours),
        "plain_s": statistics.median(plain),
        "modelpulse_all": ours,
        "plain_all": plain,
    }


# --- part 2: latency at a steady event rate ---------------------------------------------------


def bench_latency(
    api: str, key: str, receivers: Receivers, rate: float, seconds: float, stack: Stack
) -> dict[str, object]:
    import httpx

    organization = "bench-latency"
    create_webhooks(api, key, organization, receivers.urls, "drift.detected")
    # One client for every request: httpx.post() would build a client (and load the CA bundle, ~20 ms
    # of CPU) per call, load the measuring process adds to the machine, not to ModelPulse.
    http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
    # Warm-up (not counted): the dispatcher is up and polling once this event arrives.
    warm_up(http, api, key, organization, "drift.detected", receivers)
    cpu_before = _cpu_by_process(stack)
    load = offer_events(http, api, key, organization, "drift.detected", rate, seconds, receivers)
    http.close()
    cpu = {name: (used - cpu_before.get(name, 0.0)) / load.elapsed_s for name, used in _cpu_by_process(stack).items()}
    return {
        "events": load.events,
        "rate": rate,
        "deliveries": load.deliveries,
        "expected": load.expected,
        "p50_ms": load.p(0.50),
        "p90_ms": load.p(0.90),
        "p99_ms": load.p(0.99),
        "max_ms": max(load.latencies_ms),
        "accepted": len(load.accept_ms),
        "accept_p50_ms": percentile(load.accept_ms, 0.50),
        "accept_p99_ms": percentile(load.accept_ms, 0.99),
        "cpu_cores_used": {name: round(share, 3) for name, share in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dispatchers", type=int, default=1, help="webhook dispatcher processes (make up runs 1)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-webhook-bench-"))
    print(f"logs in {workdir}", flush=True)
    env = _environment(workdir)
    stack = Stack(workdir, env)
    receivers = Receivers.start(args.receivers, env)
    try:
        urls = receivers.urls
        api, (key, latency_key) = stack.start_prefect_and_api("bench-fanout", "bench-latency")
        fan_out = bench_fan_out(api, key, urls, args.repeats)
        for index in range(args.dispatchers):
            stack.start(f"webhook-dispatcher-{index + 1}", [sys.executable, "-m", "flows.fan_out"])
        five = Receivers(receivers.process, urls[:5])  # the same process: one arrivals list for every port
        latency = bench_latency(api, latency_key, five, args.rate, args.seconds, stack)
    finally:
        stack.stop()
        receivers.stop()

    ratio = fan_out["modelpulse_s"] / fan_out["plain_s"]
    print(f"\nWebhook fan-out, {os.cpu_count()} CPUs, Prefect server on SQLite, all on loopback\n")
    print("| measurement | ModelPulse | plain asyncio + httpx | goal |")
    print("|---|---|---|---|")
    print(
        f"| one event to {fan_out['receivers']} receivers (concurrency {fan_out['concurrency']}), "
        f"median of {args.repeats} | {fan_out['modelpulse_s']:.2f} s | {fan_out['plain_s']:.2f} s "
        f"| ratio {ratio:.2f} (goal <= 1.5) |"
    )
    print(
        f"| event accepted -> first attempt, {latency['rate']:g} events/s x 5 receivers, "
        f"{args.dispatchers} dispatcher(s), "
        f"{latency['deliveries']}/{latency['expected']} deliveries | p50 {latency['p50_ms']:.0f} ms, "
        f"p90 {latency['p90_ms']:.0f} ms, p99 {latency['p99_ms']:.0f} ms, max {latency['max_ms']:.0f} ms "
        f"| - | p50 < 250 ms, p99 < 1 s |"
    )
    print(
        f"| POST /events answered (202), same run | p50 {latency['accept_p50_ms']:.0f} ms, "
        f"p99 {latency['accept_p99_ms']:.0f} ms | - | - |"
    )
    print(
        "| CPU of each process during that run, in cores | "
        + ", ".join(f"{name} {share:.2f}" for name, share in latency["cpu_cores_used"].items())
        + " | - | - |"
    )
    print("\nraw:", json.dumps({"fan_out": fan_out, "latency": latency}))


if __name__ == "__main__":
    main()
