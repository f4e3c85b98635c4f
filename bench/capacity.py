"""Capacity: the CPU each unit of work costs each process kind, and the event rate one machine sustains.

    PYTHONPATH=. .venv/bin/python bench/capacity.py [--quick] [--seconds 15] [--rates 10 20 30 40 60 80]

(5-7 minutes with the defaults; ``--quick`` is a smoke run of 2-3 minutes.)

Two shapes of the stack, each brought up with the documented command (``modelpulse up``, all roles,
one machine) and measured in turn, in one run:

- **SQLite**: ``up`` with its defaults (SQLite for ModelPulse and Prefect, 1 dispatcher);
- **PostgreSQL + Redis**: ``MODELPULSE_DATABASE_URL`` and ``MODELPULSE_PREFECT_DATABASE_URL`` on a
  PostgreSQL and ``MODELPULSE_REDIS_URL`` on a Redis started here (Prefect's services then run as their
  own process), ``MODELPULSE_DISPATCHERS=2`` (``--dispatchers``).

On each: events are posted to ``POST /events`` at stepped rates (5 loopback receivers subscribed), and
each step reports event -> first attempt p50/p99 (from the moment each POST was due) and the cores each
process kind used; stepping stops after the first step that misses p99 < 1 s. On PostgreSQL + Redis it
then measures the CPU-ms per unit of work: per event (from the steps), per 1,000 records exported to
the Elasticsearch fake (two export sizes: the slope is the per-record cost, the rest the per-run cost),
per accepted ``POST /events`` and per ``GET /webhooks``. CPU is read from /proc (utime + stime of each
process tree, children included) and the idle CPU of each kind (measured first) is subtracted; the
whole machine's busy CPU (/proc/stat) shows how much other processes took meanwhile.

The scheduled sweeps (``run-monitors``, ``registry-sync``, ``retry-due-deliveries``) are paused while
measuring: they cost per run, not per unit of work. Everything is on loopback, bounded in time, and
stops and removes what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_throughput import load as closed_loop  # noqa: E402
from bench.export_throughput import SECRETS  # noqa: E402
from bench.export_throughput import seed as seed_inference_logs  # noqa: E402
from bench.process_cpu import children_of, machine_busy_seconds, process_table, tree, tree_cpu_seconds  # noqa: E402
from bench.webhook_load import EventLoad, Receivers, create_webhooks, offer_events, percentile, warm_up  # noqa: E402
from tests.support.cluster import RoleSet, machine_environment  # noqa: E402
from tests.support.databases import PostgresServer, RedisServer, postgres_binaries, redis_binary  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

GOAL_P99_MS = 1000.0
RECEIVERS = 5
# Process kinds of the stack, in the order of the tables; the cost tables add the Prefect server's API
# and services processes up as "Prefect server".
KINDS = ("dispatcher", "prefect api", "prefect services", "api", "worker", "postgresql", "redis")


def kind_of(command: str) -> str | None:
    """The process kind of one of ``up``'s children, from its command line (one-shot steps: None)."""
    for fragment, kind in (
        ("flows.fan_out", "dispatcher"),
        ("stack.prefect_services", "prefect services"),
        ("stack.prefect_server start", "prefect api"),
        ("stack.prefect_worker start", "worker"),
        ("stack.flow_run_forks", "worker"),  # the flow-run fork server: the worker's runs are its children
        ("gunicorn", "api"),
    ):
        if fragment in command:
            return kind
    return None


# --- CPU by process kind ------------------------------------------------------------------------


@dataclass
class Usage:
    """CPU seconds each process (kind, pid) used over ``seconds`` of wall time."""

    seconds: float
    cpu: dict[tuple[str, int], float]
    machine_busy: float  # CPU seconds the whole machine was busy meanwhile (other sessions' processes too)

    @property
    def machine_cores(self) -> float:
        return self.machine_busy / self.seconds

    def by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (kind, _), used in self.cpu.items():
            totals[kind] = totals.get(kind, 0.0) + used
        return totals

    def cores(self) -> dict[str, float]:
        return {kind: used / self.seconds for kind, used in self.by_kind().items()}

    def busiest(self, kind: str) -> float:
        """Cores of the busiest single process of ``kind`` (one Python process tops out near 1)."""
        return max((used for (k, _), used in self.cpu.items() if k == kind), default=0.0) / self.seconds

    def per_unit_ms(self, idle_cores: dict[str, float], units: float) -> dict[str, float]:
        """CPU-ms per unit of work, each kind's idle CPU over the same time subtracted."""
        return {
            kind: (used - idle_cores.get(kind, 0.0) * self.seconds) * 1000 / units
            for kind, used in self.by_kind().items()
        }


@dataclass
class Mark:
    at: float
    cpu: dict[tuple[str, int], float]
    machine_busy: float


@dataclass
class Shape:
    """One stack under measurement: ``up`` and, for the production shape, its PostgreSQL and Redis."""

    name: str
    machine: RoleSet
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    others: dict[str, int] = field(default_factory=dict)  # other processes on the same cores: name -> pid
    idle_cores: dict[str, float] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.machine.api_url

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.machine.env['MODELPULSE_PREFECT_PORT']}/api"

    @property
    def database_url(self) -> str:
        default = f"sqlite:///{(Path(self.machine.env['MODELPULSE_HOME']) / 'modelpulse.db').resolve()}"
        return self.machine.env.get("MODELPULSE_DATABASE_URL", default)  # up's default: SQLite in its home

    def cpu_now(self) -> dict[tuple[str, int], float]:
        table = process_table()
        found = {}
        for pid in children_of(table).get(self.machine.process.pid, []):  # type: ignore[union-attr]
            kind = kind_of(table[pid].command)
            if kind:
                found[(kind, pid)] = tree_cpu_seconds(pid, table)
        if self.postgres:
            postmaster = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
            found[("postgresql", postmaster)] = tree_cpu_seconds(postmaster, table)
        if self.redis and self.redis.process:
            found[("redis", self.redis.process.pid)] = tree_cpu_seconds(self.redis.process.pid, table)
        for name, pid in self.others.items():
            found[(name, pid)] = tree_cpu_seconds(pid, table)
        found[("bench client", os.getpid())] = sum(os.times()[:2])  # this process's own threads
        return found

    def mark(self) -> Mark:
        return Mark(time.monotonic(), self.cpu_now(), machine_busy_seconds())

    def since(self, mark: Mark) -> Usage:
        now, busy = self.cpu_now(), machine_busy_seconds()
        return Usage(time.monotonic() - mark.at, {key: used - mark.cpu.get(key, 0.0) for key, used in now.items()},
                     busy - mark.machine_busy)

    def worker_busy(self) -> bool:
        """Whether a worker is running a flow run (a subprocess below it)."""
        table = process_table()
        workers = [pid for pid in children_of(table).get(self.machine.process.pid, [])  # type: ignore[union-attr]
                   if kind_of(table[pid].command) == "worker"]
        return any(len(tree(pid, table)) > 1 for pid in workers)


# --- bringing a shape up ------------------------------------------------------------------------


def start_shape(name: str, home: Path, production: bool, stack: ExitStack, dispatchers: int = 2,
                **environment: str) -> Shape:
    """``modelpulse up`` (all roles) in a home of its own; the production shape on a PostgreSQL and a
    Redis started here, with ``dispatchers`` dispatchers. ``stack`` stops all of it; ``environment``
    overrides the test clusters' settings."""
    settings = {
        "MODELPULSE_PREFECT_PORT": str(free_port()),
        # Counted as in production (its cost is in the figures) but far above the offered load.
        "MODELPULSE_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    postgres = redis = None
    if production:
        postgres = PostgresServer.start_new()
        stack.callback(postgres.destroy)
        redis = RedisServer.start_new(home.parent / "redis")
        stack.callback(redis.stop)
        postgres.create_database("modelpulse")
        postgres.create_database("prefect")
        settings |= {
            "MODELPULSE_DATABASE_URL": postgres.url("modelpulse"),
            "MODELPULSE_PREFECT_DATABASE_URL": postgres.url("prefect", "asyncpg"),
            "MODELPULSE_REDIS_URL": redis.url,
            "MODELPULSE_DISPATCHERS": str(dispatchers),
        }
    api_port = free_port()
    env = machine_environment(home, api_port, {}, **settings, **environment)
    machine = RoleSet(name, "prefect,api,worker,dispatcher", env, home, api_port)
    stack.callback(stop_machine, machine)
    say(f"{name}: modelpulse up --roles prefect,api,worker,dispatcher")
    machine.start(timeout=600)
    return Shape(name, machine, postgres, redis)


def stop_machine(machine: RoleSet) -> None:
    """Stop ``up`` as Ctrl-C does, then kill whatever of its process group outlived it (a gunicorn
    worker stuck at exit has been seen to outlive its master, which ``up`` kills after 15 s)."""
    machine.stop()
    if machine.process is None:
        return
    group = machine.process.pid  # ``up`` leads a session (and process group) of its own
    left = []
    for pid in process_table():
        try:
            if os.getpgid(pid) == group:
                left.append(pid)
        except ProcessLookupError:
            pass
    if left:
        say(f"{machine.name}: {len(left)} process(es) outlived `up` ({', '.join(map(str, left))}); killing them")
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pause_schedules(shape: Shape, timeout: float = 180) -> None:
    """Pause every scheduled deployment and wait until the runs they already started have ended."""
    with httpx.Client(base_url=shape.prefect_api, timeout=30) as prefect:
        for deployment in prefect.post("/deployments/filter", json={}).json():
            if deployment.get("schedules"):
                prefect.post(f"/deployments/{deployment['id']}/pause_deployment").raise_for_status()
        active = {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}}}}
        deadline = time.monotonic() + timeout
        while prefect.post("/flow_runs/count", json=active).json() or shape.worker_busy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{shape.name}: scheduled runs still running after {timeout:.0f}s")
            time.sleep(1)


def fan_out_runs(shape: Shape) -> int:
    body = {"task_runs": {"name": {"like_": "fan-out-"}}}
    return httpx.post(f"{shape.prefect_api}/task_runs/count", json=body, timeout=30).json()


def wait_until_quiet(shape: Shape, cores: float = 0.25, timeout: float = 60) -> None:
    """Wait until the stack's processes together use less than ``cores`` over 2 s (a worker still
    importing, Prefect still recording the warm-up's task runs, PostgreSQL analysing new rows...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mark = shape.mark()
        time.sleep(2)
        used = shape.since(mark).cores()
        if sum(used.get(kind, 0.0) for kind in KINDS) < cores:
            return
    say(f"{shape.name}: still busy after {timeout:.0f} s; measuring the idle CPU anyway")


def measure_idle(shape: Shape, seconds: float) -> Usage:
    wait_until_quiet(shape)
    mark = shape.mark()
    time.sleep(seconds)
    usage = shape.since(mark)
    shape.idle_cores = usage.cores()
    return usage


# --- events at stepped rates --------------------------------------------------------------------


@dataclass
class Step:
    load: EventLoad
    usage: Usage  # first POST due -> last delivery in
    settled: Usage  # the same plus the settle time: Prefect's task-run state writes land after the deliveries
    fan_out_runs: int
    load_average: float  # the machine's 1-minute load average as the step ended

    @property
    def met(self) -> bool:
        return self.load.deliveries == self.load.expected and self.load.p(0.99) < GOAL_P99_MS

    def per_event_ms(self, idle_cores: dict[str, float]) -> dict[str, float]:
        return self.settled.per_unit_ms(idle_cores, self.load.events)


def step_events(shape: Shape, http: httpx.Client, receivers: Receivers, rates: list[float], seconds: float,
                settle: float) -> list[Step]:
    """Offer each rate in turn; stop after the first that misses the goal."""
    steps = []
    for rate in rates:
        runs_before = fan_out_runs(shape)
        mark = shape.mark()
        load = offer_events(http, shape.api, shape.machine.key, "default", "drift.detected", rate, seconds,
                            receivers, from_schedule=True, drain_timeout=max(30.0, 2 * seconds))
        usage = shape.since(mark)
        time.sleep(settle)
        step = Step(load, usage, shape.since(mark), fan_out_runs(shape) - runs_before, os.getloadavg()[0])
        steps.append(step)
        say(f"{shape.name}: {rate:g} events/s: {load.deliveries}/{load.expected} deliveries, "
            f"p50 {load.p(0.5):.0f} ms, p99 {load.p(0.99):.0f} ms")
        if not step.met:
            break
    return steps


# --- exports and API requests (PostgreSQL + Redis) ----------------------------------------------


@dataclass
class ExportRun:
    records: int
    seconds: float  # trigger -> flow-run process gone
    usage: Usage


def seed_export(shape: Shape, records: int) -> tuple[str, str]:
    """An organization holding ``records`` inference logs, and an API key for it."""
    from store.db import session_scope
    from store.organizations import create_api_key

    organization = seed_inference_logs(shape.database_url, records, f"capacity-{records}")
    with session_scope(shape.database_url) as session:
        key = create_api_key(session, organization, created_by="bench/capacity.py")
    return organization, key


def export_once(shape: Shape, es_url: str, organization: str, key: str, records: int, settle: float) -> ExportRun:
    """Create an Elasticsearch export through the API, trigger it, and wait until its run completed
    and the worker's flow-run process has exited."""
    body = {
        "name": "capacity",
        "type": "elasticsearch",
        "streams": ["inference_logs"],
        "config": {"url": es_url},
        "credentials": SECRETS["elasticsearch"],
    }
    with httpx.Client(base_url=shape.api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        created = api.post(f"/organizations/{organization}/exports", json=body)
        created.raise_for_status()
        mark = shape.mark()
        run = api.post(f"/organizations/{organization}/exports/{created.json()['id']}/trigger")
        run.raise_for_status()
        deadline = time.monotonic() + 600
        while (status := api.get(run.json()["status_url"]).json())["status"] not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"export of {records} records not done in 600 s: {status}")
            time.sleep(0.5)
        while shape.worker_busy() and time.monotonic() < deadline:
            time.sleep(0.2)
        seconds = time.monotonic() - mark.at
        time.sleep(settle)
        usage = shape.since(mark)
    shipped = status["streams"].get("inference_logs", {}).get("shipped")
    if status["status"] != "completed" or shipped != records:
        raise RuntimeError(f"export of {records} records: {status}")
    say(f"{shape.name}: exported {records:,} records in {seconds:.1f} s")
    return ExportRun(records, seconds, usage)


@dataclass
class RequestLoad:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    usage: Usage


def request_load(shape: Shape, name: str, url: str, key: str, requests: int, body: object, status: int,
                 settle: float, concurrency: int = 8) -> RequestLoad:
    headers = {"Authorization": f"Bearer {key}"}
    asyncio.run(closed_loop(url, headers, min(100, requests), concurrency, body, status))  # warm-up
    mark = shape.mark()
    seconds, latencies = asyncio.run(closed_loop(url, headers, requests, concurrency, body, status))
    time.sleep(settle)
    usage = shape.since(mark)
    say(f"{shape.name}: {name}: {requests / seconds:.0f} requests/s")
    return RequestLoad(name, requests, seconds, latencies, usage)


# --- the report ---------------------------------------------------------------------------------


def prefect_total(values: dict[str, float]) -> float:
    return values.get("prefect api", 0.0) + values.get("prefect services", 0.0)


def stack_total(values: dict[str, float]) -> float:
    return sum(value for kind, value in values.items() if kind in KINDS)


def cost_row(label: str, values: dict[str, float], digits: int = 1) -> str:
    columns = [values.get("dispatcher", 0.0), prefect_total(values), values.get("api", 0.0),
               values.get("worker", 0.0), values.get("postgresql", 0.0), values.get("redis", 0.0)]
    return f"| {label} | " + " | ".join(f"{v:.{digits}f}" for v in [*columns, sum(columns)]) + " |"


def highest_met(steps: list[Step]) -> Step | None:
    met = [step for step in steps if step.met]
    return met[-1] if met else None


def report_rates(shapes: dict[str, list[Step]], seconds: float) -> None:
    names = list(shapes)
    rates = sorted({step.load.rate for steps in shapes.values() for step in steps})
    print(f"\n### Sustained events/s at p99 event -> first attempt < 1 s ({os.cpu_count()} cores, "
          f"{RECEIVERS} receivers per event, {seconds:g} s per step)\n")
    print("| offered events/s | " + " | ".join(f"{name}: p50 / p99 ms (deliveries)" for name in names) + " |")
    print("|---:|" + "---|" * len(names))
    for rate in rates:
        cells = []
        for name in names:
            step = next((s for s in shapes[name] if s.load.rate == rate), None)
            if step is None:
                cells.append("not run (a lower rate missed)")
                continue
            load, missed = step.load, "" if step.met else " **missed**"
            cells.append(f"{load.p(0.5):,.0f} / {load.p(0.99):,.0f} ({load.deliveries}/{load.expected}){missed}")
        print(f"| {rate:g} | " + " | ".join(cells) + " |")
    print()
    for name in names:
        best = highest_met(shapes[name])
        print(f"- {name}: **{best.load.rate:g} events/s**" if best else f"- {name}: no step met the goal")

    print("\n### Cores used per process kind at each step (first POST due -> last delivery)\n")
    print("| shape | events/s | dispatcher (busiest process) | Prefect API | Prefect services | API | worker "
          "| PostgreSQL | Redis | receivers + bench client | all of these | whole machine busy "
          "| POST /events p99 ms | fan-out runs per event | load average |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for step in shapes[name]:
            cores = step.usage.cores()
            dispatchers = f"{cores.get('dispatcher', 0):.2f} ({step.usage.busiest('dispatcher'):.2f})"
            print(
                f"| {name} | {step.load.rate:g} | {dispatchers} "
                + "".join(f"| {cores.get(kind, 0):.2f} " for kind in KINDS[1:])
                + f"| {cores.get('receivers', 0) + cores.get('bench client', 0):.2f} | {sum(cores.values()):.2f} "
                f"| {step.usage.machine_cores:.2f} | {percentile(step.load.accept_ms, 0.99):,.0f} "
                f"| {step.fan_out_runs / step.load.events:.2f} | {step.load_average:.1f} |"
            )


@dataclass
class ExportCosts:
    per_thousand: dict[str, float]  # CPU-ms per 1,000 records
    per_run: dict[str, float]  # CPU-ms per run, apart from its records


def export_costs(exports: list[ExportRun], idle_cores: dict[str, float]) -> ExportCosts:
    """The per-record cost is the slope between the two export sizes; the rest is the run's own."""
    small, large = (run.usage.per_unit_ms(idle_cores, 1) for run in exports)
    thousands = (exports[1].records - exports[0].records) / 1000
    per_thousand = {kind: (large.get(kind, 0.0) - small.get(kind, 0.0)) / thousands for kind in large}
    per_run = {kind: small.get(kind, 0.0) - per_thousand.get(kind, 0.0) * exports[0].records / 1000 for kind in small}
    return ExportCosts(per_thousand, per_run)


def report_costs(shapes: dict[str, list[Step]], idle: dict[str, dict[str, float]], production: str,
                 exports: ExportCosts | None, export_runs: list[ExportRun], requests: list[RequestLoad]) -> None:
    print("\n### Cost per unit of work, CPU-ms (each kind's idle CPU subtracted)\n")
    print("| unit of work | dispatcher | Prefect server (API + services) | API | worker | PostgreSQL | Redis | total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in shapes:
        print(cost_row(f"{name}: at rest, cores (not per unit)", idle[name], 3))
    for name, steps in shapes.items():
        for step in steps:
            missed = "" if step.met else " (p99 missed)"
            print(cost_row(f"{name}: one event to {RECEIVERS} receivers, at {step.load.rate:g} events/s{missed}",
                           step.per_event_ms(idle[name])))
    if exports:
        print(cost_row(f"{production}: 1,000 records exported to Elasticsearch", exports.per_thousand))
        print(cost_row(f"{production}: one export run, apart from its records", exports.per_run))
    for load in requests:
        print(cost_row(f"{production}: {load.name}", load.usage.per_unit_ms(idle[production], load.requests), 2))
    print()
    for run in export_runs:
        print(f"- export of {run.records:,} records: {run.seconds:.1f} s from trigger to the flow-run process' exit "
              f"({run.records / run.seconds:,.0f} records/s)")
    for load in requests:
        p50, p99 = (percentile(load.latencies, q) * 1000 for q in (0.5, 0.99))
        print(f"- {load.name}: {load.requests / load.seconds:,.0f} requests/s at concurrency 8, "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def report_sizing(steps: list[Step], idle_cores: dict[str, float], production: str,
                  exports: ExportCosts | None) -> None:
    # The cost per event where the shape still met the goal at its highest rate (else at its lowest).
    at = highest_met(steps) or steps[0]
    per100 = {kind: value * 100 / 1000 for kind, value in at.per_event_ms(idle_cores).items()}  # cores at 100/s
    print(f"\n### Sizing ({production})\n")
    print(f"- 100 events/s ({RECEIVERS} webhooks each) need about {per100.get('dispatcher', 0):.2f} cores of "
          f"dispatcher, {prefect_total(per100):.2f} of Prefect server (API + services), "
          f"{per100.get('postgresql', 0):.2f} of PostgreSQL, {per100.get('redis', 0):.2f} of Redis and "
          f"{per100.get('api', 0):.2f} of API (the cost per event at {at.load.rate:g} events/s); at rest the "
          f"stack uses {stack_total(idle_cores):.2f} cores.")
    if exports:
        per10k = {kind: value * 10 / 1000 for kind, value in exports.per_thousand.items()}  # cores at 10,000/s
        print(f"- 10,000 records/s exported need about {per10k.get('worker', 0):.2f} cores of worker (its flow-run "
              f"processes), {prefect_total(per10k):.2f} of Prefect server and {per10k.get('postgresql', 0):.2f} of "
              f"PostgreSQL, plus {stack_total(exports.per_run) / 1000:.1f} CPU-s per export run "
              f"({exports.per_run.get('worker', 0) / 1000:.1f} of them in the worker).")


def report_ceiling(shapes: dict[str, list[Step]]) -> None:
    print("\n### Where the ceiling is (the highest step run)\n")
    for name, steps in shapes.items():
        last = steps[-1]
        cores = last.usage.cores()
        stack_cores = {kind: cores.get(kind, 0.0) for kind in KINDS}
        top = max(stack_cores, key=stack_cores.__getitem__)
        print(f"- {name}, {last.load.rate:g} events/s ({'met' if last.met else 'missed'}): the stack, receivers "
              f"and bench client {sum(cores.values()):.2f} cores, the whole machine {last.usage.machine_cores:.2f} "
              f"of {os.cpu_count()} (load average {last.load_average:.1f}); "
              f"the most: {top} {stack_cores[top]:.2f} (busiest dispatcher process "
              f"{last.usage.busiest('dispatcher'):.2f}; Prefect server {prefect_total(stack_cores):.2f}, API "
              f"{stack_cores['api']:.2f}, PostgreSQL {stack_cores['postgresql']:.2f})")


def raw_figures(shapes: dict[str, list[Step]], idle: dict[str, dict[str, float]], production: str,
                exports: ExportCosts | None, export_runs: list[ExportRun],
                requests: list[RequestLoad]) -> dict[str, object]:
    return {
        "steps": {
            name: [
                {"rate": s.load.rate, "events": s.load.events, "deliveries": s.load.deliveries,
                 "p50_ms": s.load.p(0.5), "p99_ms": s.load.p(0.99), "met": s.met,
                 "accept_p99_ms": percentile(s.load.accept_ms, 0.99),
                 "send_lag_p99_ms": percentile(s.load.send_lag_ms, 0.99), "fan_out_runs": s.fan_out_runs,
                 "load_average": s.load_average, "machine_cores": s.usage.machine_cores,
                 "cores": s.usage.cores(), "per_event_ms": s.per_event_ms(idle[name])}
                for s in steps
            ]
            for name, steps in shapes.items()
        },
        "idle_cores": idle,
        "export_ms_per_1000": exports.per_thousand if exports else None,
        "export_ms_per_run": exports.per_run if exports else None,
        "exports": [{"records": r.records, "seconds": r.seconds, "cpu_s": r.usage.by_kind()} for r in export_runs],
        "requests_ms": {r.name: r.usage.per_unit_ms(idle[production], r.requests) for r in requests},
    }


# --- main ---------------------------------------------------------------------------------------


SQLITE, PRODUCTION = "SQLite", "PostgreSQL + Redis"


@dataclass
class Results:
    steps: dict[str, list[Step]] = field(default_factory=dict)  # by shape
    idle: dict[str, dict[str, float]] = field(default_factory=dict)  # by shape: cores of each kind at rest
    export_runs: list[ExportRun] = field(default_factory=list)
    requests: list[RequestLoad] = field(default_factory=list)


@dataclass
class Bench:
    """What every shape is measured with."""

    args: argparse.Namespace
    workdir: Path
    receivers: Receivers
    others: dict[str, int]  # the receivers' and the fake's processes: on the same cores, not ModelPulse
    es_url: str
    http: httpx.Client


def measure_shape(bench: Bench, name: str, production: bool, results: Results) -> None:
    """Bring one shape up, measure it, and stop it."""
    args, http, receivers = bench.args, bench.http, bench.receivers
    with ExitStack() as stack:
        home = bench.workdir / ("production" if production else "sqlite")
        shape = start_shape(name, home, production, stack, args.dispatchers)
        stack.push(_print_logs_on_error(shape))
        shape.others = bench.others
        pause_schedules(shape)
        create_webhooks(shape.api, shape.machine.key, "default", receivers.urls, "drift.detected")
        # Seeded before the idle CPU is measured: PostgreSQL analyses the new rows for a while.
        seeded = [seed_export(shape, size) for size in args.export_sizes] if production else []
        warm_up(http, shape.api, shape.machine.key, "default", "drift.detected", receivers)
        measure_idle(shape, args.idle_seconds)
        results.idle[name] = shape.idle_cores
        say(f"{name}: at rest {stack_total(shape.idle_cores):.2f} cores; stepping the rate")
        results.steps[name] = step_events(shape, http, receivers, args.rates, args.seconds, args.settle)
        if not production:
            return
        results.export_runs = [
            export_once(shape, bench.es_url, organization, key, size, args.settle)
            for (organization, key), size in zip(seeded, args.export_sizes, strict=True)
        ]
        quiet_organization, quiet_key = seeded[0]  # no webhooks: the dispatcher settles its events at once
        results.requests = [
            request_load(shape, "POST /events (202; no webhook subscribed)",
                         f"{shape.api}/organizations/{quiet_organization}/events", quiet_key, args.requests,
                         {"type": "drift.detected", "data": {"model": "churn"}}, 202, args.settle),
            request_load(shape, f"GET /webhooks (a page of {RECEIVERS})",
                         f"{shape.api}/organizations/default/webhooks?limit=50", shape.machine.key, args.requests,
                         None, 200, args.settle),
        ]
        say(f"{name}: stopping")


def say(text: str) -> None:
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {text}", file=sys.stderr, flush=True)


def start_es_fake(env: dict[str, str], stack: ExitStack) -> tuple[subprocess.Popen, str]:
    """The answer-at-once Elasticsearch stub (bench/sink_stubs.py), in a process of its own."""
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink_stubs.py")],
        env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )

    def stop() -> None:
        fake.stdin.close()  # type: ignore[union-attr]
        try:
            fake.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fake.kill()
            fake.wait()

    stack.callback(stop)
    return fake, fake.stdout.readline().strip()  # type: ignore[union-attr]


def _print_logs_on_error(shape: Shape):
    def exit_(kind, error, traceback) -> bool:
        if error is not None:
            print(f"--- {shape.name}: the ends of its logs\n{shape.machine.log_tails()}", file=sys.stderr)
        return False

    return exit_


def _stop_on(signum: int, _frame: object) -> None:
    raise TimeoutError("time limit reached") if signum == signal.SIGALRM else KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases, for a smoke run")
    parser.add_argument("--seconds", type=float, help="seconds per rate step (15; --quick 5)")
    parser.add_argument("--rates", type=float, nargs="+", help="offered events/s (10 20 30 40 60 80; --quick 10 20 40)")
    parser.add_argument("--idle-seconds", type=float, help="idle CPU measured for this long (10; --quick 4)")
    parser.add_argument("--export-sizes", type=int, nargs=2, help="records of the two exports (20000 100000)")
    parser.add_argument("--requests", type=int, help="API requests of each kind (2000; --quick 300)")
    parser.add_argument("--dispatchers", type=int, default=2, help="dispatchers of the PostgreSQL + Redis shape (2)")
    parser.add_argument("--shapes", nargs="+", choices=["sqlite", "production"], default=["sqlite", "production"],
                        help="which shapes to run (both by default)")
    parser.add_argument("--time-limit", type=float, default=1800, help="stop everything after this many seconds")
    args = parser.parse_args()
    quick = args.quick
    args.seconds = args.seconds or (5.0 if quick else 15.0)
    args.rates = args.rates or ([10, 20, 40] if quick else [10, 20, 30, 40, 60, 80])
    args.idle_seconds = args.idle_seconds or (4.0 if quick else 10.0)
    args.export_sizes = args.export_sizes or ([5_000, 20_000] if quick else [20_000, 100_000])
    args.requests = args.requests or (300 if quick else 2000)
    args.settle = 2.0 if quick else 3.0
    if postgres_binaries() is None or redis_binary() is None:
        sys.exit("bench/capacity.py needs PostgreSQL and redis-server (apt-get install postgresql redis-server)")

    signal.signal(signal.SIGTERM, _stop_on)
    signal.signal(signal.SIGALRM, _stop_on)
    signal.alarm(int(args.time_limit))
    started, load_at_start = time.monotonic(), os.getloadavg()
    say(f"capacity bench: {os.cpu_count()} cores, rates {args.rates}, {args.seconds:g} s per step")
    results = Results()
    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-capacity-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        receivers = Receivers.start(RECEIVERS, env)
        stack.callback(receivers.stop)
        fake, es_url = start_es_fake(env, stack)
        bench = Bench(args, workdir, receivers, {"receivers": receivers.process.pid, "es fake": fake.pid}, es_url,
                      stack.enter_context(httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32))))
        if "sqlite" in args.shapes:
            measure_shape(bench, SQLITE, production=False, results=results)
        if "production" in args.shapes:
            measure_shape(bench, PRODUCTION, production=True, results=results)
        say(f"done in {time.monotonic() - started:.0f} s; cleaning up")
    signal.alarm(0)

    print(f"\n## Capacity: `{' '.join(['bench/capacity.py', *sys.argv[1:]])}`\n")
    print(f"{os.cpu_count()} cores; load average (1/5/15 min) {'/'.join(f'{v:.2f}' for v in load_at_start)} at the "
          f"start, {'/'.join(f'{v:.2f}' for v in os.getloadavg())} at the end; the run took "
          f"{time.monotonic() - started:.0f} s. {SQLITE}: `up` defaults (1 dispatcher); {PRODUCTION}: "
          f"MODELPULSE_DISPATCHERS={args.dispatchers}.")
    exports = export_costs(results.export_runs, results.idle[PRODUCTION]) if results.export_runs else None
    report_rates(results.steps, args.seconds)
    report_costs(results.steps, results.idle, PRODUCTION, exports, results.export_runs, results.requests)
    if PRODUCTION in results.steps:
        report_sizing(results.steps[PRODUCTION], results.idle[PRODUCTION], PRODUCTION, exports)
    report_ceiling(results.steps)
    raw = raw_figures(results.steps, results.idle, PRODUCTION, exports, results.export_runs, results.requests)
    print("\nraw:", json.dumps(raw))


if __name__ == "__main__":
    main()
