"""Export throughput: ModelPulse's ``export`` flow vs the client's own ``helpers.streaming_bulk``.

    PYTHONPATH=. python bench/export_throughput.py [--sizes 100000 1000000]

For each size, N inference logs are written to a fresh SQLite database, then two child processes run
against the same Elasticsearch fake (itself a separate process, so its CPU and memory are not
counted):

- **ModelPulse**: the real ``export`` flow end to end (pages read past the watermark, transformed to
  ECS documents, shipped with ``streaming_bulk`` chunks, run counters and watermark committed per
  page, Prefect tasks and a Prefect server recording it all);
- **baseline**: one ``helpers.streaming_bulk`` loop over the same documents (same rows, same
  ``to_document``, same chunk size), streamed from one database cursor, no paging, no bookkeeping.

Each child reports its wall time and peak RSS (``ru_maxrss``), so memory is measured per size in a
process of its own. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"


def serve_fake() -> None:
    """Child mode: run the Elasticsearch fake until stdin closes; print its URL first."""
    from tests.fakes.elasticsearch import ElasticsearchFake

    fake = ElasticsearchFake(username="elastic", password=PASSWORD, keep_sources=False)
    fake.record_requests = False
    with fake:
        print(fake.url, flush=True)
        sys.stdin.read()


def seed(database_url: str, count: int, org_id: str = "org_bench") -> str:
    """Write ``count`` inference logs for a new organization; returns the organization id."""
    from datetime import datetime, timedelta

    from sqlalchemy import insert

    from store.db import session_scope
    from store.migrate import upgrade
    from store.models import InferenceLog, Organization

    upgrade(database_url)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with session_scope(database_url) as session:
        session.add(Organization(id=org_id))
    batch = 20_000
    for offset in range(0, count, batch):
        rows = [
            {
                "organization_id": org_id,
                "model": "churn",
                "model_version": "3",
                "timestamp": start + timedelta(milliseconds=i),
                "request_id": f"req-{i}",
                "features": {"age": 30 + i % 40, "plan": "pro", "tenure_months": i % 60},
                "prediction": {"churn": 0.25},
                "label": None,
                "latency_ms": 12.5,
            }
            for i in range(offset, min(offset + batch, count))
        ]
        with session_scope(database_url) as session:
            session.execute(insert(InferenceLog), rows)
    return org_id


def run_modelpulse(es_url: str, org_id: str) -> dict[str, float]:
    """Child mode: the ``export`` flow end to end."""
    from blocks.connections import register_block_types, save_connection
    from flows.export import export
    from store.db import session_scope
    from store.ids import new_id
    from store.models import Export

    register_block_types()
    export_id = new_id("exp")
    config = {"url": es_url}
    with session_scope() as session:
        session.add(
            Export(id=export_id, organization_id=org_id, name=f"bench-{export_id}", type="elasticsearch", config=config,
                   secret_fields=["password", "username"], streams=["inference_logs"])
        )
    save_connection("export", export_id, "elasticsearch", config, {"username": "elastic", "password": PASSWORD})
    started = time.perf_counter()
    summary = export(export_id)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "records": summary["streams"]["inference_logs"]["shipped"]}


def run_baseline(es_url: str, org_id: str) -> dict[str, float]:
    """Child mode: ``streaming_bulk`` over the same documents, streamed from one cursor."""
    from elasticsearch import Elasticsearch, helpers
    from sqlalchemy import select

    from store.db import session_scope
    from store.export_streams import STREAMS
    from tasks.sinks.elasticsearch import CHUNK_SIZE, MAX_CHUNK_BYTES, to_document

    client = Elasticsearch(es_url, basic_auth=("elastic", PASSWORD))
    stream = STREAMS["inference_logs"]
    started = time.perf_counter()
    shipped = 0
    with session_scope() as session:
        rows = session.execute(
            select(stream.table).where(stream.table.c.organization_id == org_id).order_by(stream.id_column),
            execution_options={"yield_per": 5000},
        )

        def actions():
            for row in rows:
                record = dict(row._mapping)
                record["record_id"] = stream.record_id(record["id"])
                document = to_document("inference_logs", record)
                yield {"_index": "bench-baseline", "_id": record["record_id"], "_source": document}

        for ok, _item in helpers.streaming_bulk(
            client, actions(), chunk_size=CHUNK_SIZE, max_chunk_bytes=MAX_CHUNK_BYTES
        ):
            shipped += ok
    return {"seconds": time.perf_counter() - started, "records": shipped}


def child(mode: str, es_url: str, org_id: str) -> None:
    result = (run_modelpulse if mode == "modelpulse" else run_baseline)(es_url, org_id)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def measure(mode: str, es_url: str, org_id: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--es-url", es_url, "--org", org_id],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} child failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def start_prefect(workdir: Path, env: dict[str, str]) -> subprocess.Popen:
    from tests.support.servers import free_port, start_process, wait_until_ready

    port = free_port()
    env.update({
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{workdir / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    process = start_process(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        workdir / "prefect-server.log", env=env,
    )
    wait_until_ready(f"http://127.0.0.1:{port}/api/health", process, timeout=180)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", choices=["modelpulse", "baseline"])
    parser.add_argument("--serve-fake", action="store_true")
    parser.add_argument("--es-url")
    parser.add_argument("--org")
    args = parser.parse_args()
    if args.serve_fake:
        return serve_fake()
    if args.child:
        return child(args.child, args.es_url, args.org)

    from tests.support.servers import stop_process

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-bench-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    prefect = start_prefect(workdir, env)
    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake"], env=env, cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    es_url = fake.stdout.readline().strip()
    rows = []
    try:
        for size in args.sizes:
            database_url = f"sqlite:///{workdir / f'bench-{size}.db'}"
            org_id = seed(database_url, size)
            size_env = dict(env, MODELPULSE_DATABASE_URL=database_url)
            baseline = measure("baseline", es_url, org_id, size_env)
            ours = measure("modelpulse", es_url, org_id, size_env)
            assert ours["records"] == baseline["records"] == size, (ours, baseline)
            rows.append((size, ours, baseline))
            print(f"# {size}: modelpulse {ours}, baseline {baseline}", file=sys.stderr, flush=True)
    finally:
        fake.stdin.close()
        fake.wait(timeout=30)
        stop_process(prefect)
        shutil.rmtree(workdir, ignore_errors=True)  # the 1M database alone is ~400 MB

    print(
        "| records | ModelPulse export (rec/s) | streaming_bulk (rec/s) | ratio "
        "| ModelPulse peak RSS | streaming_bulk peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, ours, baseline in rows:
        mp_rate, base_rate = size / ours["seconds"], size / baseline["seconds"]
        print(
            f"| {size:,} | {mp_rate:,.0f} | {base_rate:,.0f} | {mp_rate / base_rate:.2f} "
            f"| {ours['peak_rss_mb']:.0f} MB | {baseline['peak_rss_mb']:.0f} MB |"
        )
    if len(rows) >= 2:
        small, large = rows[0][1]["peak_rss_mb"], rows[-1][1]["peak_rss_mb"]
        print(f"\nModelPulse peak RSS {rows[-1][0]:,} / {rows[0][0]:,}: {large / small:.2f}x")


if __name__ == "__main__":
    main()
