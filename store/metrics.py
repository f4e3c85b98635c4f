"""ModelPulse's Prometheus metrics: what each process counts, in one place.

Every process kind records into the objects below (``prometheus-client``). Under ``up`` each process
writes them to files in the machine's metrics directory (``PROMETHEUS_MULTIPROC_DIR``, set by the
supervisor, which owns and empties it), so the API's ``GET /metrics`` serves the sum over the
machine's API workers, dispatchers, workers and flow runs (``store.metrics_exposition``). Without
that directory (tests, a bare ``flask run``) each process counts for itself.

Gauges of shared state (pending work, lag) are not here: they are read from the database at
scrape time (``store.metric_gauges``), and so are the same whichever process is scraped.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

PREFIX = "modelpulse_"

# No `_created` series: multi-process mode (what `up` runs) has none, and a scrape of a single process
# should show the same names.
disable_created_metrics()

# Webhook latency goals are p50 < 250 ms and p99 < 1 s: buckets around them, then the retry range.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_ACCEPTED = Counter(
    "modelpulse_events_accepted",
    "Events accepted into the outbox (pushed, reported or emitted by a flow).",
    ["organization", "type"],
)
WEBHOOK_ATTEMPTS = Counter(
    "modelpulse_webhook_attempts",
    "Webhook delivery attempts by outcome (delivered, failed, timeout, refused, gone).",
    ["organization", "outcome"],
)
WEBHOOK_EVENT_TO_ATTEMPT = Histogram(
    "modelpulse_webhook_event_to_attempt_seconds",
    "From an event's acceptance to the first attempt of each of its deliveries.",
    buckets=LATENCY_BUCKETS,
)
EXPORT_RECORDS = Counter(
    "modelpulse_export_records",
    "Records an export run handed to its sink: shipped (accepted) or rejected (refused by the sink).",
    ["organization", "export_id", "stream", "outcome"],
)
EXPORT_RUNS = Counter(
    "modelpulse_export_runs",
    "Export runs that ended, by outcome: the run's status (completed, completed_with_errors, failed).",
    ["outcome"],
)
REGISTRY_SYNCS = Counter(
    "modelpulse_registry_syncs",
    "Registry syncs that ended, by registry type and outcome (succeeded, failed).",
    ["type", "outcome"],
)
HTTP_REQUESTS = Counter(
    "modelpulse_http_requests",
    "API requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "modelpulse_http_request_seconds",
    "API request duration by method and route template.",
    ["method", "route"],
    buckets=REQUEST_BUCKETS,
)

# Every name a scrape can show, with its type and labels (a histogram also serves ``_bucket`` with ``le``,
# ``_sum`` and ``_count``): the dashboards' and alert rules' references are
# checked against this (tests/test_dashboards.py), so a renamed metric fails there, not in Grafana.
SERVED: dict[str, tuple[str, tuple[str, ...]]] = {
    "modelpulse_events_accepted_total": ("counter", ("organization", "type")),
    "modelpulse_webhook_attempts_total": ("counter", ("organization", "outcome")),
    "modelpulse_webhook_event_to_attempt_seconds": ("histogram", ()),
    "modelpulse_outbox_pending": ("gauge", ()),
    "modelpulse_webhook_deliveries_pending": ("gauge", ()),
    "modelpulse_webhook_oldest_pending_seconds": ("gauge", ()),
    "modelpulse_export_records_total": ("counter", ("organization", "export_id", "stream", "outcome")),
    "modelpulse_export_lag_seconds": ("gauge", ("organization", "export_id", "stream")),
    "modelpulse_export_runs_total": ("counter", ("outcome",)),
    "modelpulse_registry_syncs_total": ("counter", ("type", "outcome")),
    "modelpulse_http_requests_total": ("counter", ("method", "route", "status")),
    "modelpulse_http_request_seconds": ("histogram", ("method", "route")),
}


def directory() -> Path | None:
    """The machine's metrics directory, where ``up`` set one (prometheus-client reads the same variable)."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def exposition(*collectors: Collector) -> bytes:
    """The text a scrape gets: ModelPulse's metrics of every process of this machine (or of this process
    alone, without a metrics directory), then what ``collectors`` yield (the database's gauges)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    shared = directory()
    if shared is None:
        registry.register(_Ours(REGISTRY))
        return generate_latest(registry)
    shared.mkdir(parents=True, exist_ok=True)
    registry.register(_Ours(MultiProcessCollector(None, path=str(shared))))
    with _compaction_lock(shared) as compacting:
        if compacting:
            compact(shared)
        return generate_latest(registry)


class _Ours(Collector):
    """Only ModelPulse's families: Prefect's own client metrics land in the same files and registry."""

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterator:
        return (family for family in self._source.collect() if family.name.startswith(PREFIX))


@contextmanager
def _compaction_lock(shared: Path, wait: bool = True) -> Iterator[bool]:
    """Exclusive (yields True: the holder compacts) when nobody holds it, else (``wait``) shared once the
    compaction in progress ends: a file is never folded away while a scrape reads the directory."""
    with open(shared / ".compact.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait:
                fcntl.flock(lock, fcntl.LOCK_SH)
            yield False
        else:
            yield True


def compact_unless_busy(shared: Path) -> int:
    """``compact`` now, unless a scrape holds the directory (it compacts, or the next one will)."""
    if not shared.is_dir():
        return 0
    with _compaction_lock(shared, wait=False) as compacting:
        return compact(shared) if compacting else 0


def compact(shared: Path) -> int:
    """Fold the counters and histograms of processes that have ended into one file per kind; return how
    many files were folded. The caller holds the directory's lock exclusively (``_compaction_lock``).

    Each process writes its own ``<kind>_<pid>.db``; a worker forks a flow run per unit of work, so
    without this the directory (and each scrape's reading of it) would grow by a file per run. Sums are
    what a scrape serves, so folding keeps every total. Gauge files of ended processes are dropped,
    as ``prometheus_client.multiprocess.mark_process_dead`` does (ModelPulse keeps no gauge in files).
    """
    ended: dict[str, list[Path]] = {}
    for path in shared.glob("*.db"):
        kind, _, rest = path.stem.partition("_")
        pid = rest.rpartition("_")[2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "gauge":
            path.unlink(missing_ok=True)
        else:
            ended.setdefault(kind, []).append(path)
    for kind, paths in ended.items():
        _fold(shared / f"{kind}_ended.db", paths)
    return sum(len(paths) for paths in ended.values())


def _fold(archive: Path, paths: Iterable[Path]) -> None:
    # Sums go into a copy that replaces the archive whole, so a crash leaves either the old archive
    # with every file still there, or the new one (and at worst a file folded twice, if the crash
    # comes between the replace and its unlink).
    scratch = archive.with_suffix(".folding")
    if archive.exists():
        shutil.copyfile(archive, scratch)
    else:
        scratch.unlink(missing_ok=True)
    into = MmapedDict(str(scratch))
    try:
        for path in paths:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):
                if key.startswith(f'["{PREFIX}'):  # the key is JSON: [metric name, sample name, ...]
                    into.write_value(key, into.read_value(key)[0] + value, timestamp)
    finally:
        into.close()
    os.replace(scratch, archive)
    for path in paths:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
