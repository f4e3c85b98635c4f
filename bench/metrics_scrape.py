"""Metrics benchmark: what one scrape of ``GET /metrics`` costs at 1M deliveries, and what recording the
metrics adds to one event's way through the webhook path.

Scrape: a SQLite database (WAL, as ``make up``) with D deliveries (default 1,000,000) and as many events,
all settled but for a handful open, and X exports (default 50) over the three streams with watermarks near
the end; a metrics directory with P live processes' files (default 12) plus the folded totals of the ended
ones, holding series for 50 organizations and 40 routes. Timed (CPU ms of this process, median of R):

- ``raw``: prometheus-client alone: ``MultiProcessCollector`` + ``generate_latest`` over the same directory;
- ``scrape``: what the view does: the same, filtered to ModelPulse's families, with the compaction check
  and the database gauges (``store.metric_gauges``);
- ``gauges``: the database gauges alone.

Per event: the metric calls one event makes on its way, with 5 webhooks: one ``events_accepted`` and one
request counter and histogram in the API, then per delivery an attempt counter and the
event-to-attempt histogram in the dispatcher; in multi-process mode (each a write to an mmap'd file), in
µs, beside the per-event budget of the webhook path (10 CPU-ms, #22's goal).

Usage::

    PYTHONPATH=. python bench/metrics_scrape.py [--deliveries 1000000] [--exports 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="modelpulse-metrics-bench-"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(WORK / "metrics")  # before prometheus-client is imported
(WORK / "metrics").mkdir()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from store.db import session_scope  # noqa: E402
from store.ids import new_id  # noqa: E402
from store.metric_gauges import DatabaseGauges  # noqa: E402
from store.metrics import (  # noqa: E402
    EVENTS_ACCEPTED,
    HTTP_REQUEST_SECONDS,
    HTTP_REQUESTS,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_EVENT_TO_ATTEMPT,
    exposition,
)
from store.migrate import upgrade  # noqa: E402
from store.models import Event, Export, InferenceLog, Organization, Webhook, utcnow  # noqa: E402
from store.models.deliveries import Delivery  # noqa: E402
from store.models.export_runs import ExportWatermark  # noqa: E402

ORGANIZATIONS = 50
ROUTES = 40
BATCH = 20_000


def seed(url: str, deliveries: int, exports: int) -> None:
    now = utcnow()
    with session_scope(url) as session:
        for i in range(ORGANIZATIONS):
            session.add(Organization(id=f"org-{i}"))
        session.flush()
        session.add(Webhook(id="whk_bench", organization_id="org-0", name="bench", url="https://93.184.215.14/h",
                            events=["drift.detected"], header_names=[]))
    connection_columns = {"type": "splunk", "config": {}, "secret_fields": [], "streams": list(
        ("inference_logs", "drift_metrics", "events"))}
    with session_scope(url) as session:
        for i in range(exports):
            session.add(Export(id=f"exp_{i:04d}", organization_id=f"org-{i % ORGANIZATIONS}", name=f"e{i}",
                               **connection_columns))
    done = 0
    while done < deliveries:
        count = min(BATCH, deliveries - done)
        events = [new_id("evt") for _ in range(count)]
        with session_scope(url) as session:
            session.execute(insert(Event), [
                {"id": event, "organization_id": "org-0", "type": "drift.detected", "data": {"model": "m"},
                 "timestamp": now, "dispatched_at": now, "published_at": now} for event in events
            ])
            session.execute(insert(Delivery), [
                {"id": new_id("dlv"), "organization_id": "org-0", "webhook_id": "whk_bench", "event_id": event,
                 "event_type": "drift.detected", "status": "succeeded", "attempt_count": 1,
                 "next_attempt_at": None} for event in events
            ])
            session.execute(insert(InferenceLog), [
                {"organization_id": f"org-{j % ORGANIZATIONS}", "model": "m", "model_version": "1",
                 "timestamp": now, "features": {}, "prediction": {}} for j in range(count // 10)
            ])
        done += count
    with session_scope(url) as session:
        for i in range(5):  # a handful open
            session.execute(text("UPDATE webhook_deliveries SET status='retrying', next_attempt_at=:due "
                                 "WHERE id = (SELECT id FROM webhook_deliveries ORDER BY id DESC LIMIT 1 OFFSET :i)"),
                            {"due": now, "i": i})
        last = session.scalar(text("SELECT max(id) FROM inference_logs"))
        for i in range(exports):
            for stream, position in (("inference_logs", str(last - 100)), ("drift_metrics", "0"),
                                     ("events", "evt_0")):
                session.add(ExportWatermark(export_id=f"exp_{i:04d}", stream=stream, position=position))


def fill_metrics_directory(processes: int) -> None:
    """Series from ``processes`` processes (forked children: one file each) and folded totals."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for _ in range(processes):
        child = context.Process(target=_record_some)
        child.start()
        child.join()


def _record_some() -> None:
    for i in range(ORGANIZATIONS):
        EVENTS_ACCEPTED.labels(f"org-{i}", "drift.detected").inc()
        for outcome in ("delivered", "failed", "timeout"):
            WEBHOOK_ATTEMPTS.labels(f"org-{i}", outcome).inc()
    for route in range(ROUTES):
        for status in ("200", "201", "404"):
            HTTP_REQUESTS.labels("GET", f"/route/{route}", status).inc()
        HTTP_REQUEST_SECONDS.labels("GET", f"/route/{route}").observe(0.01)
    WEBHOOK_EVENT_TO_ATTEMPT.observe(0.1)
    os._exit(0)


def cpu_ms(function, rounds: int) -> tuple[float, int]:
    samples = []
    size = 0
    for _ in range(rounds):
        started = time.process_time()
        size = len(function())
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples), size


def per_event_us(webhooks: int = 5, events: int = 20_000) -> float:
    started = time.process_time()
    for i in range(events):
        EVENTS_ACCEPTED.labels("org-1", "drift.detected").inc()
        HTTP_REQUESTS.labels("POST", "/organizations/<organization_id>/events", "202").inc()
        HTTP_REQUEST_SECONDS.labels("POST", "/organizations/<organization_id>/events").observe(0.004)
        for _ in range(webhooks):
            WEBHOOK_ATTEMPTS.labels("org-1", "delivered").inc()
            WEBHOOK_EVENT_TO_ATTEMPT.observe(0.05 + i % 7 / 100)
    return (time.process_time() - started) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--exports", type=int, default=50)
    parser.add_argument("--processes", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    url = f"sqlite:///{WORK / 'modelpulse.db'}"
    upgrade(url)
    started = time.monotonic()
    seed(url, args.deliveries, args.exports)
    print(f"seeded {args.deliveries:,} deliveries and events, {args.exports} exports in "
          f"{time.monotonic() - started:.0f} s")
    fill_metrics_directory(args.processes)
    shared = WORK / "metrics"

    def raw() -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(shared))
        return generate_latest(registry)

    gauges = DatabaseGauges(url)

    def gauges_only() -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(gauges)
        return generate_latest(registry)

    exposition(gauges)  # folds the ended children's files, as the first scrape after they end does
    files = len(list(shared.glob("*.db")))
    rows = [
        ("raw (prometheus-client alone)", *cpu_ms(raw, args.rounds)),
        ("scrape (GET /metrics)", *cpu_ms(lambda: exposition(gauges), args.rounds)),
        ("database gauges alone", *cpu_ms(gauges_only, args.rounds)),
    ]
    print(f"\nscrape at {args.deliveries:,} deliveries, {args.exports} exports x 3 streams, {files} metrics files "
          f"(median of {args.rounds}, CPU ms of this process):")
    for name, ms, size in rows:
        print(f"  {name:32} {ms:8.1f} ms   {size:>8,} bytes")
    cost = per_event_us()
    print(f"\nmetrics per event (1 accepted + 1 request + 5 attempts, multi-process files): {cost:.1f} µs "
          f"= {cost / 10_000 * 100:.2f} % of the 10 CPU-ms budget per event")


if __name__ == "__main__":
    main()
