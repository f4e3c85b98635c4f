"""Alerting benchmark: event accepted -> Slack message at the receiver, at R events/s (default 20).

Through the real stack, as a user's Slack webhook gets it: the gunicorn-served API (``POST .../events``,
``threshold.breached``), the outbox, the webhook dispatcher (``python -m flows.fan_out``) and its
``fan-out-events`` Prefect task runs, the ``slack`` format's rendering, to a Slack-like receiver
process on loopback that checks each message as the Slack fake does (text <= 40,000 characters,
<= 50 blocks...) and notes when it arrived. Goal (the webhooks' own): p50 < 250 ms, p99 < 1 s.

Beside it, in the same run: the baseline, a plain httpx loop that posts the same rendered message
straight to the receiver at the same rate (what the network and the receiver cost by themselves).
Usage::

    PYTHONPATH=. python bench/alerting.py [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_fanout import ROOT, Stack, _cpu_by_process, _environment  # noqa: E402
from webhook_load import percentile  # noqa: E402

EVENT_ID = re.compile(rb"evt_[0-9a-z]+")
ORGANIZATION = "bench-alerting"


# --- the Slack-like receiver process ---------------------------------------------------------


async def _serve_slack() -> None:
    from tests.fakes.slack import problems

    arrivals: list[tuple[str, float]] = []
    refused: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.time()
                lines = head.split(b"\r\n")
                path = lines[0].split()[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                status, answer = b"200 OK", b"ok"
                if path == b"/__dump":
                    answer = json.dumps({"arrivals": arrivals, "refused": refused}).encode()
                    arrivals.clear()
                else:
                    found = problems(json.loads(body))
                    if found:
                        refused.append("; ".join(found))
                        status, answer = b"400 Bad Request", b"invalid_blocks"
                    else:
                        match = EVENT_ID.search(body)
                        arrivals.append((match.group(0).decode() if match else "", now))
                head = b"HTTP/1.1 %s\r\ncontent-type: text/html\r\ncontent-length: %d\r\n\r\n" % (status, len(answer))
                writer.write(head + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(json.dumps(server.sockets[0].getsockname()[1]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


# --- the two measurements --------------------------------------------------------------------


def _breach(index: int) -> dict[str, object]:
    return {
        "threshold_id": "thr_01jdx3k8v5c8m2y7q4n6t9w0ab",
        "model": "fraud",
        "metric": "latency_ms.p95",
        "operator": ">",
        "threshold": 250.0,
        "value": 300.0 + index,
        "severity": "error",
    }


def _at_rate(rate: float, seconds: float, send) -> None:  # noqa: ANN001
    begin = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for index in range(int(rate * seconds)):
            delay = begin + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, index)


def _collect(http, dump_url: str, expected: int) -> tuple[list[tuple[str, float]], list[str]]:  # noqa: ANN001
    arrivals: list[tuple[str, float]] = []
    refused: list[str] = []
    deadline = time.monotonic() + 120
    while len(arrivals) < expected and time.monotonic() < deadline and not refused:
        time.sleep(1)
        dump = http.get(dump_url).json()
        arrivals += [tuple(a) for a in dump["arrivals"]]
        refused += dump["refused"]
    return arrivals, refused


def _dump_url(slack_url: str) -> str:
    from urllib.parse import urlsplit

    return f"http://{urlsplit(slack_url).netloc}/__dump"


def _latencies(sent: dict[str, float], arrivals: list[tuple[str, float]]) -> list[float]:
    first: dict[str, float] = {}
    for event_id, at in arrivals:
        if event_id in sent:
            first[event_id] = min(at, first.get(event_id, at))
    return [(at - sent[event_id]) * 1000 for event_id, at in first.items()]


def bench_slack(api: str, key: str, slack_url: str, rate: float, seconds: float, stack: Stack) -> dict[str, object]:
    """Event accepted by the API -> the Slack message at the receiver."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
    body = {"name": "alerts", "format": "slack", "url": slack_url, "events": ["threshold.breached"]}
    http.post(f"{api}/organizations/{ORGANIZATION}/webhooks", json=body, headers=headers).raise_for_status()
    dump_url = _dump_url(slack_url)
    warm_up = http.post(
        f"{api}/organizations/{ORGANIZATION}/events",
        json={"type": "threshold.breached", "data": _breach(-1)},
        headers=headers,
    ).json()["id"]
    arrivals, refused = _collect(http, dump_url, 1)
    assert [a for a in arrivals if a[0] == warm_up] and not refused, (arrivals, refused)
    sent: dict[str, float] = {}
    lock = threading.Lock()

    def publish(index: int) -> None:
        started = time.time()
        response = http.post(
            f"{api}/organizations/{ORGANIZATION}/events",
            json={"type": "threshold.breached", "data": _breach(index)},
            headers=headers,
        )
        response.raise_for_status()
        with lock:
            sent[response.json()["id"]] = started

    cpu_before = _cpu_by_process(stack)
    begin = time.monotonic()
    _at_rate(rate, seconds, publish)
    arrivals, refused = _collect(http, dump_url, len(sent))
    elapsed = time.monotonic() - begin
    http.close()
    cpu = {name: (used - cpu_before.get(name, 0.0)) / elapsed for name, used in _cpu_by_process(stack).items()}
    latencies = _latencies(sent, arrivals)
    return _summary(latencies, len(sent), refused) | {"cpu_cores_used": {k: round(v, 3) for k, v in cpu.items()}}


def bench_plain(slack_url: str, rate: float, seconds: float) -> dict[str, object]:
    """The baseline: the same rendered messages posted straight to the receiver with httpx."""
    import httpx

    from tasks.webhooks.formats import slack
    from tasks.webhooks.formats.base import Destination

    dump_url = _dump_url(slack_url)
    http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
    sent: dict[str, float] = {}
    lock = threading.Lock()

    def post(index: int) -> None:
        event_id = f"evt_plain{index:021d}"
        event = {"id": event_id, "type": "threshold.breached", "timestamp": "2026-11-02T10:00:02Z",
                 "organization_id": ORGANIZATION, "project_id": None, "data": _breach(index)}
        started = time.time()
        body = slack.render(event, Destination("wh_plain")).body
        http.post(slack_url, content=body, headers={"content-type": "application/json"}).raise_for_status()
        with lock:
            sent[event_id] = started

    _at_rate(rate, seconds, post)
    arrivals, refused = _collect(http, dump_url, len(sent))
    http.close()
    return _summary(_latencies(sent, arrivals), len(sent), refused)


def _summary(latencies: list[float], sent: int, refused: list[str]) -> dict[str, object]:
    return {
        "sent": sent,
        "delivered": len(latencies),
        "refused": refused[:5],
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve-slack", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_slack:
        asyncio.run(_serve_slack())
        return

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-alerting-bench-"))
    print(f"logs in {workdir}", flush=True)
    env = _environment(workdir)
    stack = Stack(workdir, env)
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve-slack"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    try:
        port = json.loads(receiver.stdout.readline())  # type: ignore[union-attr]
        slack_url = f"http://127.0.0.1:{port}/services/T0BENCH/B0BENCH/benchsecret"
        api, (key,) = stack.start_prefect_and_api(ORGANIZATION)
        stack.start("webhook-dispatcher", [sys.executable, "-m", "flows.fan_out"])
        plain = bench_plain(slack_url, args.rate, args.seconds)
        ours = bench_slack(api, key, slack_url, args.rate, args.seconds, stack)
    finally:
        stack.stop()
        receiver.stdin.close()  # type: ignore[union-attr]
        receiver.wait(timeout=30)

    print(f"\nAlerting: event -> Slack message, {os.cpu_count()} CPUs, Prefect server on SQLite, all on loopback\n")
    print("| measurement | ModelPulse | plain httpx post of the same message | goal |")
    print("|---|---|---|---|")
    print(
        f"| event accepted -> Slack message at the receiver, {args.rate:g} events/s for {args.seconds:g} s, "
        f"{ours['delivered']}/{ours['sent']} delivered | p50 {ours['p50_ms']:.0f} ms, p90 {ours['p90_ms']:.0f} ms, "
        f"p99 {ours['p99_ms']:.0f} ms, max {ours['max_ms']:.0f} ms | p50 {plain['p50_ms']:.1f} ms, "
        f"p99 {plain['p99_ms']:.1f} ms ({plain['delivered']}/{plain['sent']}) | p50 < 250 ms, p99 < 1 s |"
    )
    print(
        "| CPU of each process during that run, in cores | "
        + ", ".join(f"{name} {share:.2f}" for name, share in ours["cpu_cores_used"].items())
        + " | - | - |"
    )
    print("\nraw:", json.dumps({"slack": ours, "plain": plain}))


if __name__ == "__main__":
    main()
