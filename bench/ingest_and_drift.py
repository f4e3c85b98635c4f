"""Benchmark: inference-log ingestion through the API, and a drift check over 1M rows x 20 features.

Prints two tables (README-style) for ``bench/RESULTS.md``:

1. Ingestion: records/s through gunicorn (4 sync workers) on SQLite, batches of 1,000 and 10,000
   records from concurrent clients, beside the raw baseline of the same rows inserted with
   ``executemany`` in one process (no HTTP, no validation).
2. Drift: one check over 1,000,000 logged rows (500k reference + 500k current) of 20 features:
   reading both windows from the database, measuring them (per method), recording the metrics; and
   the statistics alone on 1M-value numpy samples per window.

Usage:
    PYTHONPATH=. python bench/ingest_and_drift.py [--records 200000] [--drift-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, stop_process, wait_until_ready  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FEATURES = 20


def make_records(count: int, start: datetime, shift: float, seed: int) -> list[dict]:
    """``count`` records one ms apart, 16 numeric and 4 categorical features."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(shift, 1.0, size=(count, FEATURES - 4)).round(6)
    categories = np.array(["a", "b", "c", "d", "e"])
    categorical = categories[rng.integers(0, 5, size=(count, 4))]
    records = []
    for i in range(count):
        features = {f"n{j}": float(numeric[i, j]) for j in range(FEATURES - 4)}
        features.update({f"c{j}": str(categorical[i, j]) for j in range(4)})
        records.append(
            {
                "model": "bench",
                "model_version": "1",
                "timestamp": (start + timedelta(milliseconds=i)).isoformat(),
                "features": features,
                "prediction": float(numeric[i, 0] > 0),
                "latency_ms": 10.0,
            }
        )
    return records


def fresh_database(directory: Path, name: str) -> str:
    from store.migrate import upgrade

    url = f"sqlite:///{directory / name}"
    upgrade(url)
    return url


def bench_ingestion(total: int, batch: int, clients: int, workdir: Path) -> dict:
    """Records/s through gunicorn; each client thread posts pre-serialised batches."""
    from store.db import session_scope
    from store.organizations import create_api_key

    url = fresh_database(workdir, f"ingest-{batch}.db")
    with session_scope(url) as session:
        key = create_api_key(session, "bench")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODELPULSE_DATABASE_URL": url, "MODELPULSE_HOME": str(workdir)}
    log = open(workdir / f"gunicorn-{batch}.log", "ab")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--no-control-socket",
            "-w",
            "4",
            "--preload",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "api.wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", server, timeout=300)
        records = make_records(batch, T0, 0.0, seed=batch)
        body = json.dumps({"records": records}).encode()
        requests = total // batch
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        latencies: list[float] = []
        lock = threading.Lock()
        counter = iter(range(requests))

        def client() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                for _ in counter:
                    started = time.perf_counter()
                    response = http.post("/organizations/bench/inference-logs", content=body, headers=headers)
                    assert response.status_code == 202, response.text
                    with lock:
                        latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        stop_process(server)
    raw = bench_raw_insert(records, requests * batch, workdir, batch)
    return {
        "batch": batch,
        "clients": clients,
        "records": requests * batch,
        "api_records_per_s": requests * batch / elapsed,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "raw_records_per_s": raw,
    }


def bench_raw_insert(records: list[dict], total: int, workdir: Path, batch: int) -> float:
    """Baseline: the same rows through ``insert_inference_logs`` in one process, no HTTP or validation."""
    from store.db import session_scope
    from store.inference_logs import insert_inference_logs
    from store.organizations import ensure_organization

    url = fresh_database(workdir, f"raw-{batch}.db")
    with session_scope(url) as session:
        ensure_organization(session, "bench")
    rows = [
        {
            **r,
            "timestamp": datetime.fromisoformat(r["timestamp"]),
            "project_id": None,
            "request_id": None,
            "label": None,
        }
        for r in records
    ]
    started = time.perf_counter()
    for _ in range(total // len(rows)):
        with session_scope(url) as session:
            insert_inference_logs(session, "bench", rows)
    return total / (time.perf_counter() - started)


def bench_drift(rows: int, workdir: Path) -> list[dict]:
    """One check over ``rows`` logged rows (half reference, half current, current shifted by 0.05)."""
    from sqlalchemy import text

    from store import db as store_db
    from store.db import session_scope
    from store.drift import create_drift_check
    from store.inference_logs import insert_inference_logs
    from store.organizations import ensure_organization
    from store.settings import get_settings
    from tasks.drift.check import load_check_windows, measure_drift, record_drift_check

    url = fresh_database(workdir, "drift.db")
    os.environ["MODELPULSE_DATABASE_URL"] = url
    get_settings.cache_clear()
    store_db.forget_engines()
    with session_scope() as session:
        ensure_organization(session, "bench")
    half = rows // 2
    chunk = 50_000
    loaded = time.perf_counter()
    for window_start, shift, seed in ((T0, 0.0, 1), (T0 + timedelta(days=1), 0.05, 2)):
        for offset in range(0, half, chunk):
            records = make_records(chunk, window_start + timedelta(milliseconds=offset), shift, seed + offset)
            for record in records:
                record["timestamp"] = datetime.fromisoformat(record["timestamp"])
            with session_scope() as session:
                insert_inference_logs(session, "bench", records)
    loaded = time.perf_counter() - loaded
    with session_scope() as session:
        session.execute(text("ANALYZE"))

    results = []
    for method in ("ks", "psi", "js", "auto"):
        with session_scope() as session:
            check = create_drift_check(
                session,
                "bench",
                model="bench",
                model_version=None,
                method=method,
                threshold=None,
                features=None,
                reference_from=T0,
                reference_to=T0 + timedelta(days=1),
                current_from=T0 + timedelta(days=1),
                current_to=T0 + timedelta(days=2),
            )
        started = time.perf_counter()
        windows = load_check_windows.fn(check.id)
        read = time.perf_counter()
        measured = measure_drift.fn(windows)
        computed = time.perf_counter()
        record_drift_check.fn(check.id, measured, windows.reference_count, windows.current_count)
        recorded = time.perf_counter()
        results.append(
            {
                "method": method,
                "rows": windows.reference_count + windows.current_count,
                "features": len(measured),
                "drifted": sum(r["drifted"] for r in measured),
                "read_s": read - started,
                "measure_s": computed - read,
                "record_s": recorded - computed,
                "total_s": recorded - started,
            }
        )
        del windows
    results.append({"method": "(load 1M rows via insert_inference_logs)", "total_s": loaded, "rows": rows})
    return results


def bench_statistics(size: int) -> list[dict]:
    """The statistics alone: 20 features of ``size`` values per window, as numpy arrays."""
    from tasks.drift.methods import measure
    from tasks.drift.samples import FeatureSample

    rng = np.random.default_rng(0)
    samples = [FeatureSample(f"n{j}", False, rng.normal(0, 1, size), rng.normal(0.05, 1, size)) for j in range(16)] + [
        FeatureSample(f"c{j}", True, rng.integers(0, 5, size), rng.integers(0, 5, size), tuple("abcde"))
        for j in range(4)
    ]
    out = []
    for method in ("ks", "psi", "js", "auto"):
        started = time.perf_counter()
        for sample in samples:
            measure(sample, method)
        out.append({"method": method, "seconds": time.perf_counter() - started})
    return out


def table_row(*cells: object) -> None:
    print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="records per ingestion run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--drift-rows", type=int, default=1_000_000, help="rows in the drift check (both windows)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelpulse-bench-") as directory:
        workdir = Path(directory)
        print("## Ingestion (gunicorn -w 4, SQLite WAL)\n")
        table_row(
            "batch",
            "clients",
            "records",
            "API records/s",
            "p50 ms/request",
            "p99 ms/request",
            "raw executemany records/s",
        )
        table_row(*["---:"] * 7)
        for batch in (1_000, 10_000):
            r = bench_ingestion(args.records, batch, args.clients, workdir)
            table_row(
                f"{r['batch']:,}",
                r["clients"],
                f"{r['records']:,}",
                f"{r['api_records_per_s']:,.0f}",
                f"{r['p50_ms']:,.0f}",
                f"{r['p99_ms']:,.0f}",
                f"{r['raw_records_per_s']:,.0f}",
            )

        print(f"\n## Drift check over {args.drift_rows:,} logged rows x {FEATURES} features (SQLite)\n")
        table_row("method", "rows", "features", "drifted", "read windows s", "measure s", "record s", "total s")
        table_row("---", *["---:"] * 7)
        for r in bench_drift(args.drift_rows, workdir):
            if "read_s" in r:
                table_row(
                    r["method"],
                    f"{r['rows']:,}",
                    r["features"],
                    r["drifted"],
                    f"{r['read_s']:.1f}",
                    f"{r['measure_s']:.2f}",
                    f"{r['record_s']:.3f}",
                    f"{r['total_s']:.1f}",
                )
            else:
                table_row(r["method"], f"{r['rows']:,}", "", "", "", "", "", f"{r['total_s']:.1f}")

        size = args.drift_rows
        print(f"\n## Statistics alone: 20 features, {size:,} values per window (numpy arrays)\n")
        table_row("method", "seconds for 20 features")
        table_row("---", "---:")
        for r in bench_statistics(size):
            table_row(r["method"], f"{r['seconds']:.2f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nPeak RSS of the benchmark process: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
