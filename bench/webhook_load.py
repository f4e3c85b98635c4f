"""Webhook load for the benchmarks: loopback receivers, webhooks pointing at them, events posted to the
API at a fixed rate, and when each delivery's first attempt reached its receiver.

The receivers are one process listening on N ports (a minimal asyncio HTTP/1.1 server that answers
200 at once and notes the ``webhook-id`` and arrival time of every request; ``GET /__dump`` hands the
notes over and forgets them)::

    receivers = Receivers.start(5, env)
    create_webhooks(api, key, "acme", receivers.urls, "drift.detected")
    load = offer_events(http, api, key, "acme", "drift.detected", rate=20, seconds=10, receivers=receivers)
    print(load.p(0.99))
    receivers.stop()
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


async def serve_receivers(count: int) -> None:
    """Receiver process: listen on ``count`` loopback ports until stdin closes; print the ports first."""
    arrivals: list[tuple[str, int, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.time()
                lines = head.split(b"\r\n")
                path = lines[0].split()[1]
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(b":") for line in lines[1:] if line)
                }
                length = int(headers.get(b"content-length", b"0"))
                if length:
                    await reader.readexactly(length)
                body = b"ok"
                if path == b"/__dump":
                    body = json.dumps(arrivals).encode()
                    arrivals.clear()
                else:
                    arrivals.append((headers.get(b"webhook-id", b"").decode(), port, now))
                head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % len(body)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the sender hung up, or this process is stopping
        finally:
            writer.close()

    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024) for _ in range(count)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


@dataclass
class Receivers:
    """The receiver process and its URLs (``http://127.0.0.1:<port>/hook``)."""

    process: subprocess.Popen
    urls: list[str]

    @classmethod
    def start(cls, count: int, env: dict[str, str]) -> Receivers:
        process = subprocess.Popen(
            [sys.executable, __file__, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT
        )
        ports = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        return cls(process, [f"http://127.0.0.1:{port}/hook" for port in ports])

    @property
    def dump_url(self) -> str:
        return f"{self.urls[0].rsplit('/', 1)[0]}/__dump"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # type: ignore[union-attr]
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def create_webhooks(api: str, key: str, organization: str, urls: list[str], event_type: str) -> list[str]:
    """Create one webhook per URL through the API; returns their signing secrets in URL order."""
    headers = {"Authorization": f"Bearer {key}"}

    def create(index_url: tuple[int, str]) -> str:
        index, url = index_url
        body = {"name": f"receiver-{index}", "url": url, "events": [event_type]}
        response = httpx.post(f"{api}/organizations/{organization}/webhooks", json=body, headers=headers, timeout=60)
        response.raise_for_status()
        return response.json()["signing_secret"]

    # The first secret a fresh Prefect server stores makes its encryption key; on PostgreSQL, concurrent
    # first writes race for it (one gets a unique-key violation), so the first webhook goes alone.
    first = create((0, urls[0]))
    with ThreadPoolExecutor(8) as pool:
        return [first, *pool.map(create, list(enumerate(urls))[1:])]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@dataclass
class EventLoad:
    """What one run of ``offer_events`` saw; times in ms."""

    rate: float
    events: int
    expected: int  # deliveries: events x receivers
    latencies_ms: list[float] = field(default_factory=list)  # event -> first attempt, one per delivery
    accept_ms: list[float] = field(default_factory=list)  # POST /events answered (202)
    send_lag_ms: list[float] = field(default_factory=list)  # how late each POST left against its schedule
    elapsed_s: float = 0.0  # first POST due -> last delivery arrived (or gave up waiting)

    @property
    def deliveries(self) -> int:
        return len(self.latencies_ms)

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction) if self.latencies_ms else float("inf")


def warm_up(http: httpx.Client, api: str, key: str, organization: str, event_type: str, receivers: Receivers,
            timeout: float = 300, event: dict | None = None) -> None:
    """Send one event (``event``: the body, else a small one of ``event_type``) and wait until every receiver
    has it: the dispatchers are polling by then."""
    headers = {"Authorization": f"Bearer {key}"}
    # `model`: what every metric event type needs
    event = event or {"type": event_type, "data": {"model": "churn"}}
    response = http.post(f"{api}/organizations/{organization}/events", json=event, headers=headers)
    response.raise_for_status()
    event_id, seen = response.json()["id"], set()
    deadline = time.monotonic() + timeout
    while len(seen) < len(receivers.urls):
        if time.monotonic() > deadline:
            raise RuntimeError(f"warm-up event reached {len(seen)}/{len(receivers.urls)} receivers in {timeout:.0f}s")
        time.sleep(0.5)
        seen |= {port for got, port, _ in http.get(receivers.dump_url).json() if got == event_id}


def offer_events(
    http: httpx.Client,
    api: str,
    key: str,
    organization: str,
    event_type: str,
    rate: float,
    seconds: float,
    receivers: Receivers,
    from_schedule: bool = False,
    drain_timeout: float = 120.0,
    event: dict | None = None,
) -> EventLoad:
    """POST ``rate`` events/s for ``seconds`` from 16 threads, then wait (up to ``drain_timeout``) until
    each has reached every receiver. A delivery's latency runs to its first arrival from the moment
    its POST was sent, or, with ``from_schedule``, from the moment it was due (so a client that falls
    behind an overloaded API does not hide the delay). ``event``: the body posted (default a small one
    of ``event_type``)."""
    headers = {"Authorization": f"Bearer {key}"}
    body = event or {"type": event_type, "data": {"model": "churn", "value": 0.4}}
    total = int(rate * seconds)
    load = EventLoad(rate=rate, events=total, expected=total * len(receivers.urls))
    sent: dict[str, float] = {}
    lock = threading.Lock()
    begin_wall = time.time()
    begin = time.monotonic()

    def publish(index: int) -> None:
        due = begin_wall + index / rate
        started = time.time()
        response = http.post(
            f"{api}/organizations/{organization}/events",
            json=body,
            headers=headers,
        )
        response.raise_for_status()
        with lock:
            sent[response.json()["id"]] = due if from_schedule else started
            load.accept_ms.append((time.time() - started) * 1000)
            load.send_lag_ms.append((started - due) * 1000)

    with ThreadPoolExecutor(16) as pool:
        for index in range(total):
            delay = begin + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(publish, index)
    arrivals: list[tuple[str, int, float]] = []
    deadline = time.monotonic() + drain_timeout
    reached: set[tuple[str, int]] = set()
    while len(reached) < load.expected and time.monotonic() < deadline:
        time.sleep(0.25)
        batch = http.get(receivers.dump_url).json()
        arrivals += batch
        reached |= {(event_id, port) for event_id, port, _ in batch if event_id in sent}
    load.elapsed_s = time.monotonic() - begin
    first: dict[tuple[str, int], float] = {}
    for event_id, port, at in arrivals:
        if event_id in sent:
            first[(event_id, port)] = min(at, first.get((event_id, port), at))
    load.latencies_ms = [(at - sent[event_id]) * 1000 for (event_id, _), at in first.items()]
    return load


if __name__ == "__main__":
    asyncio.run(serve_receivers(int(sys.argv[1])))
