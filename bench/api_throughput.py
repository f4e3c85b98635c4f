"""API throughput and latency under concurrent load, beside a bare Flask baseline in the same run.

Both apps run under the same gunicorn settings on 127.0.0.1; a bounded asyncio + httpx client sends
a fixed number of requests at a fixed concurrency and stops by itself.

    .venv/bin/python bench/api_throughput.py [--requests 3000] [--concurrency 32]

ModelPulse requests are authenticated (bearer key hashed and looked up, the lookup reused for 2 s),
counted against the key's rate limit (a shared database counter, flushed in batches), read from SQLite and
rendered through the pydantic response models; the baseline returns the same bytes from memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, start_process, stop_process, wait_until_ready  # noqa: E402

BASELINE_APP = """
from flask import Flask, Response
app = Flask(__name__)
BODY = open({body_path!r}, "rb").read()

@app.get("/organizations/<organization_id>/webhooks")
def webhooks(organization_id):
    return Response(BODY, mimetype="application/json")
"""


def seed(database_url: str, count: int) -> str:
    from store.db import session_scope
    from store.ids import new_id
    from store.migrate import upgrade
    from store.models import Webhook
    from store.organizations import create_api_key

    upgrade(database_url)
    with session_scope(database_url) as session:
        key = create_api_key(session, "bench")
        for i in range(count):
            session.add(
                Webhook(
                    id=new_id("wh"),
                    organization_id="bench",
                    name=f"hook-{i}",
                    url=f"https://hooks.example.com/{i}",
                    events=["drift.detected", "model.registered"],
                    header_names=["X-Token"],
                    project_id=None,
                    enabled=True,
                )
            )
    return key


async def load(url: str, headers: dict[str, str], requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.TransportError:
                    # gunicorn closes idle keep-alive connections (2 s); a GET sent on one as it closes
                    # fails and is sent again, as any HTTP client retries an idempotent request.
                    response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def serve(app_ref: str, env: dict[str, str], log: Path, cwd: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        app_ref,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--log-level",
        "warning",
    ]
    process = start_process(argv, log, env=env, cwd=cwd)
    wait_until_ready(f"http://127.0.0.1:{port}/organizations/bench/webhooks", process, timeout=60)
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--records", type=int, default=50, help="webhooks in the listed organization")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-bench-api-"))
    database_url = f"sqlite:///{workdir / 'modelpulse.db'}"
    key = seed(database_url, args.records)
    # The per-key rate limit is counted as in production (its cost is part of the figure) but set
    # above the run's request count, so no request is refused.
    rate_limit = os.environ.get("MODELPULSE_RATE_LIMIT_PER_MINUTE", str(max(6000, 2 * (args.requests + 200))))
    env = dict(os.environ, MODELPULSE_DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    env["MODELPULSE_RATE_LIMIT_PER_MINUTE"] = rate_limit
    headers = {"Authorization": f"Bearer {key}"}

    rows = []
    process, port = serve("api.wsgi:app", env, workdir / "api.log", ROOT)
    try:
        url = f"http://127.0.0.1:{port}/organizations/bench/webhooks?limit={args.records}"
        body = httpx.get(url, headers=headers).content
        asyncio.run(load(url, headers, min(200, args.requests), args.concurrency))  # warm-up
        rows.append(
            (
                "ModelPulse GET /webhooks (auth + DB + models)",
                *asyncio.run(load(url, headers, args.requests, args.concurrency)),
            )
        )
    finally:
        stop_process(process)

    (workdir / "body.json").write_bytes(body)
    (workdir / "baseline_app.py").write_text(BASELINE_APP.format(body_path=str(workdir / "body.json")))
    process, port = serve("baseline_app:app", dict(env, PYTHONPATH=str(workdir)), workdir / "baseline.log", workdir)
    try:
        url = f"http://127.0.0.1:{port}/organizations/bench/webhooks"
        asyncio.run(load(url, {}, min(200, args.requests), args.concurrency))
        rows.append(
            ("bare Flask, same bytes from memory", *asyncio.run(load(url, {}, args.requests, args.concurrency)))
        )
    finally:
        stop_process(process)

    print(
        f"\n{args.requests} requests, concurrency {args.concurrency}, gunicorn 2 workers x 4 threads, "
        f"{len(body)} byte responses ({args.records} webhooks), {os.cpu_count()} cores"
    )
    print(f"{'server':<48} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, elapsed, latencies in rows:
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        p50 = statistics.median(latencies)
        print(f"{name:<48} {len(latencies) / elapsed:>8.0f} {p50 * 1000:>8.1f} {p99 * 1000:>8.1f}")
    ratio = (len(rows[0][2]) / rows[0][1]) / (len(rows[1][2]) / rows[1][1])
    print(f"ratio ModelPulse / baseline throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
