"""Export cost and throughput: ModelPulse's ``export`` flow vs the bare library loop, per sink.

    PYTHONPATH=. python bench/export_throughput.py [--sizes 100000 1000000]
        [--sinks elasticsearch splunk splunk-ack datadog]

For each size, N inference logs are written to a fresh SQLite database. For each sink, two child
processes then ship them to the same stub (``bench/sink_stubs.py``: its own process, pre-computed
replies, its CPU reported beside the figures, so the stub is not what is measured):

- **ModelPulse**: the real ``export`` flow end to end (pages read past the watermark, encoded,
  shipped ``config.concurrency`` at a time, run counters and watermark committed per page, every
  step a Prefect task reported to a Prefect server, a summary artifact at the end);
- **baseline**: the loop a user would write with the library alone over the same rows, streamed from
  one database cursor with no paging and no bookkeeping:
  - Elasticsearch: ``helpers.streaming_bulk`` over ``to_document`` (the same documents), 500 a chunk;
  - Splunk HEC: the same HEC events, ``json.dumps`` into ≤ 1 MB batches, posted with httpx (with
    indexer acknowledgement: each batch's ``ackId`` polled until confirmed);
  - Datadog: the same log entries, ``json.dumps`` into batches of 1,000, gzip, posted with httpx.

Each child reports its wall time and its CPU time (every thread of the process) over the measured
part (after imports and setup), and its peak RSS (``ru_maxrss``), so memory is measured per size in a process of its own. Prints one
markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process_cpu import tree_cpu_seconds  # noqa: E402

ORG = "org_bench"
SINKS = ("elasticsearch", "splunk", "splunk-ack", "datadog")
SECRETS = {
    "elasticsearch": {"username": "elastic", "password": "bench-password"},
    "splunk": {"hec_token": "bench-token"},
    "datadog": {"api_key": "bench-api-key", "app_key": "bench-app-key"},
}


def seed(database_url: str, count: int, org_id: str = ORG) -> str:
    """Write ``count`` inference logs for a new organization (``ORG`` unless named); returns its id."""
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


def export_config(sink: str, url: str) -> tuple[str, dict[str, Any]]:
    """The export type and config ModelPulse's side runs with (every other setting its default)."""
    if sink == "elasticsearch":
        return "elasticsearch", {"url": url, "mode": "data_stream"}
    if sink.startswith("splunk"):
        return "splunk", {"hec_url": url, "indexer_ack": sink == "splunk-ack"}
    return "datadog", {"api_url": url}


# --- the two sides, each run in a child process ----------------------------------------------------


def run_modelpulse(sink: str, url: str, overrides: dict[str, Any]) -> Callable[[], int]:
    """Set up an export; returns the measured part, the ``export`` flow end to end, which returns
    the records it reports shipped."""
    from blocks.connections import save_connection
    from flows.export import export
    from store.db import session_scope
    from store.ids import new_id
    from store.models import Export

    export_type, config = export_config(sink, url)
    config.update(overrides)
    export_id = new_id("exp")
    with session_scope() as session:
        session.add(
            Export(id=export_id, organization_id=ORG, name=f"bench-{export_id}", type=export_type, config=config,
                   secret_fields=sorted(SECRETS[export_type]), streams=["inference_logs"])
        )
    save_connection("export", export_id, export_type, config, SECRETS[export_type])
    return lambda: export(export_id)["streams"]["inference_logs"]["shipped"]


def plain_records() -> Iterator[dict[str, Any]]:
    """Every row as the ORM's column values, from one cursor (how a bare loop reads them)."""
    from sqlalchemy import select

    from store.db import session_scope
    from store.export_streams import STREAMS

    stream = STREAMS["inference_logs"]
    with session_scope() as session:
        rows = session.execute(
            select(stream.table).where(stream.table.c.organization_id == ORG).order_by(stream.id_column),
            execution_options={"yield_per": 5000},
        )
        for row in rows:
            record = dict(row._mapping)
            record["record_id"] = stream.record_id(record["id"])
            yield record


def baseline_elasticsearch(url: str, _ack: bool) -> int:
    from elasticsearch import Elasticsearch, helpers

    from tasks.sinks.elasticsearch import to_document

    client = Elasticsearch(url, basic_auth=("elastic", SECRETS["elasticsearch"]["password"]))
    actions = (
        {"_op_type": "create", "_index": "bench-baseline", "_id": r["record_id"],
         "_source": to_document("inference_logs", r)}
        for r in plain_records()
    )
    return sum(ok for ok, _ in helpers.streaming_bulk(client, actions, chunk_size=500))


def baseline_splunk(url: str, ack: bool) -> int:
    from tasks.sinks.records import model_labels, modelpulse_fields, time_epoch

    headers = {"Authorization": f"Splunk {SECRETS['splunk']['hec_token']}"}
    if ack:
        headers["X-Splunk-Request-Channel"] = "0b8a1b0e-5f8e-4c43-9f44-3d2b2c7e1a10"
    shipped = 0
    with httpx.Client(base_url=url, headers=headers) as client:

        def post(batch: list[str]) -> None:
            answer = client.post("/services/collector/event", content="".join(batch)).json()
            while ack:
                confirmed = client.post("/services/collector/ack", json={"acks": [answer["ackId"]]}).json()
                if confirmed["acks"].get(str(answer["ackId"])):
                    break
                time.sleep(0.05)

        batch: list[str] = []
        size = 0
        for record in plain_records():
            event = json.dumps({
                "time": round(time_epoch("inference_logs", record), 3),
                "host": "modelpulse",
                "source": "modelpulse",
                "sourcetype": "modelpulse:inference",
                "event": modelpulse_fields("inference_logs", record),
                "fields": {"modelpulse.id": record["record_id"], **model_labels("inference_logs", record)},
            }, separators=(",", ":"), default=str)
            if batch and size + len(event) > 1_000_000:
                post(batch)
                shipped += len(batch)
                batch, size = [], 0
            batch.append(event)
            size += len(event)
        if batch:
            post(batch)
            shipped += len(batch)
    return shipped


def baseline_datadog(url: str, _ack: bool) -> int:
    import gzip

    from tasks.sinks.records import model_labels, modelpulse_fields, time_iso

    headers = {"DD-API-KEY": SECRETS["datadog"]["api_key"], "Content-Type": "application/json",
               "Content-Encoding": "gzip"}
    shipped = 0
    with httpx.Client(base_url=url, headers=headers) as client:

        def post(batch: list[dict[str, Any]]) -> None:
            client.post("/api/v2/logs", content=gzip.compress(json.dumps(batch, default=str).encode(), 1))

        batch: list[dict[str, Any]] = []
        for record in plain_records():
            fields = modelpulse_fields("inference_logs", record)
            labels = model_labels("inference_logs", record)
            batch.append({
                "message": json.dumps(fields, separators=(",", ":"), default=str),
                "ddsource": "modelpulse",
                "ddtags": ",".join(f"{k}:{v}" for k, v in labels.items()),
                "hostname": "modelpulse",
                "service": labels.get("model", "modelpulse"),
                "date": time_iso("inference_logs", record),
                "modelpulse": fields,
            })
            if len(batch) == 1000:
                post(batch)
                shipped += len(batch)
                batch = []
        if batch:
            post(batch)
            shipped += len(batch)
    return shipped


BASELINES = {"elasticsearch": baseline_elasticsearch, "splunk": baseline_splunk, "datadog": baseline_datadog}


def child(side: str, sink: str, url: str, overrides: dict[str, Any]) -> None:
    """Run one side; what is measured starts after imports and setup (the export record and its
    block), so it is the cost of shipping, not of starting Python."""
    if side == "modelpulse":
        ship = run_modelpulse(sink, url, overrides)
    else:
        baseline = BASELINES[sink.split("-")[0]]
        ship = lambda: baseline(url, sink == "splunk-ack")  # noqa: E731
        for module in ("elasticsearch.helpers", "sqlalchemy", "store.db", "tasks.sinks.elasticsearch"):
            importlib.import_module(module)  # imports are not what is measured
    rss_at_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports and setup
    started, cpu_started = time.perf_counter(), time.process_time()
    records = ship()
    result = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "records": records,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "start_rss_mb": rss_at_start,
    }
    print("RESULT " + json.dumps(result), flush=True)


# --- the parent: servers, seeding, measuring -------------------------------------------------------


def received(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/_stub/received").json()


def measure(
    side: str, sink: str, stub: subprocess.Popen, url: str, env: dict[str, str], overrides: list[str]
) -> dict[str, float]:
    before, stub_cpu = received(url).get("records", 0), tree_cpu_seconds(stub.pid)
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--sink", sink, "--url", url, "--set", *overrides],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{side} {sink} child failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["stub_records"] = received(url).get("records", 0) - before
    result["stub_cpu_seconds"] = tree_cpu_seconds(stub.pid) - stub_cpu
    return result


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


def report(rows: list[tuple[str, int, dict[str, float], dict[str, float], float]]) -> None:
    print(
        "| sink | records | ModelPulse rec/s | baseline rec/s | ratio | ModelPulse CPU s / 1M "
        "| baseline CPU s / 1M | CPU ratio | ModelPulse peak RSS (at start) | baseline peak RSS (at start) "
        "| stub CPU s (MP / base) "
        "| Prefect server CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sink, size, ours, base, prefect_cpu in rows:
        mp_rate, base_rate = size / ours["seconds"], size / base["seconds"]
        mp_cpu, base_cpu = ours["cpu_seconds"] * 1e6 / size, base["cpu_seconds"] * 1e6 / size
        print(
            f"| {sink} | {size:,} | {mp_rate:,.0f} | {base_rate:,.0f} | {mp_rate / base_rate:.2f} "
            f"| {mp_cpu:.1f} | {base_cpu:.1f} | {mp_cpu / base_cpu:.2f} "
            f"| {ours['peak_rss_mb']:.0f} MB ({ours['start_rss_mb']:.0f}) "
            f"| {base['peak_rss_mb']:.0f} MB ({base['start_rss_mb']:.0f}) "
            f"| {ours['stub_cpu_seconds']:.1f} / {base['stub_cpu_seconds']:.1f} | {prefect_cpu:.1f} |"
        )
    for sink in dict.fromkeys(row[0] for row in rows):
        sizes = [(size, ours) for s, size, ours, _, _ in rows if s == sink]
        if len(sizes) >= 2:
            (small, first), (large, last) = sizes[0], sizes[-1]
            growth = last["peak_rss_mb"] / first["peak_rss_mb"]
            print(f"\n{sink}: ModelPulse peak RSS {large:,} / {small:,}: {growth:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sinks", nargs="+", choices=SINKS, default=list(SINKS))
    parser.add_argument("--child", choices=["modelpulse", "baseline"])
    parser.add_argument("--sink", choices=SINKS)
    parser.add_argument("--url")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=JSON",
        help="export config for ModelPulse's side, e.g. page_size=20000 concurrency=1",
    )
    args = parser.parse_args()
    if args.child:
        overrides = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.set)}
        return child(args.child, args.sink, args.url, overrides)

    from tests.support.servers import stop_process

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-bench-"))
    # The sink stubs listen on loopback, which the egress policy opens only when listed.
    env = dict(os.environ, PYTHONPATH=str(ROOT), MODELPULSE_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8")
    prefect = start_prefect(workdir, env)
    # Here, not in the children: registering every block type imports the Vertex AI SDK, memory an
    # export process never has.
    subprocess.run(
        [sys.executable, "-c", "from blocks.connections import register_block_types; register_block_types()"],
        env=env, cwd=ROOT, check=True,
    )
    stub = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink_stubs.py")], env=env, cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    url = stub.stdout.readline().strip()
    rows = []
    try:
        for size in args.sizes:
            database_url = f"sqlite:///{workdir / f'bench-{size}.db'}"
            seed(database_url, size)
            size_env = dict(env, MODELPULSE_DATABASE_URL=database_url)
            for sink in args.sinks:
                base = measure("baseline", sink, stub, url, size_env, args.set)
                prefect_cpu = tree_cpu_seconds(prefect.pid)
                ours = measure("modelpulse", sink, stub, url, size_env, args.set)
                prefect_cpu = tree_cpu_seconds(prefect.pid) - prefect_cpu
                for side in (ours, base):
                    assert side["records"] == side["stub_records"] == size, (sink, size, ours, base)
                rows.append((sink, size, ours, base, prefect_cpu))
                print(f"# {sink} {size}: modelpulse {ours}, baseline {base}", file=sys.stderr, flush=True)
    finally:
        stub.stdin.close()
        stub.wait(timeout=30)
        stop_process(prefect)
        shutil.rmtree(workdir, ignore_errors=True)  # the 1M database alone is ~400 MB
    report(rows)


if __name__ == "__main__":
    main()
