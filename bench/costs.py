"""What one flow run costs the whole stack, and what the stack costs at rest, for the two ways a worker
can start a flow run, side by side in one run (issue 22):

- **fresh interpreter**: Prefect's default, ``python -m prefect.engine`` per run (the work pool's
  command left empty);
- **fork server**: ``modelpulse-flow-run``, a fork of this machine's warm ``stack.flow_run_forks``.

    PYTHONPATH=. .venv/bin/python bench/costs.py [--runs 5] [--idle-seconds 120] [--shapes sqlite production]

Each shape is brought up with ``modelpulse up`` (all roles; bench/capacity.py's shapes), then, for each
way in turn (the work pool's command switched through Prefect's API, nothing restarted):

- **at rest, sweeps on their schedules** (``run-monitors``, ``registry-sync``, ``retry-due-deliveries``
  every minute): cores of every process ``up`` started, flow runs included, and the stack's peak memory
  as the sum of each process's PSS (shared pages split among the processes that share them: forked runs
  share the server's imports, and RSS would count those once per run);
- **one small export** (10 records to bench/sink_stubs.py's Elasticsearch stub), schedules paused:
  trigger (``POST .../trigger``) to the run completed and its process gone, wall seconds and CPU of the
  whole stack, the CPU the stack uses at rest over the same time subtracted; median of ``--runs``;
- then (fork server only) **``--scheduled-exports`` small exports on a one-minute schedule** for
  ``--scheduled-minutes``: cores, peak PSS, and how late each run started (Prefect's start time minus its
  expected start time; a run not started yet counts as late until the end).

CPU is read from /proc (utime + stime of each process tree, reaped children included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.capacity import (  # noqa: E402
    KINDS,
    Shape,
    measure_idle,
    pause_schedules,
    say,
    seed_export,
    start_es_fake,
    start_shape,
)
from bench.export_throughput import SECRETS  # noqa: E402
from bench.process_cpu import children_of, process_table, tree  # noqa: E402
from stack.cli import FLOW_RUN_COMMAND  # noqa: E402

WAYS = {"fresh interpreter": None, "fork server": FLOW_RUN_COMMAND}
SMALL_EXPORT = 10


@dataclass
class WayFigures:
    idle_cores: float = 0.0
    idle_by_kind: dict[str, float] | None = None
    peak_pss_mb: float = 0.0
    export_seconds: list[float] | None = None
    export_cpu: list[float] | None = None
    export_by_kind: list[dict[str, float]] | None = None


def set_flow_run_command(shape: Shape, command: str | None) -> None:
    pool = shape.machine.env.get("MODELPULSE_WORK_POOL", "modelpulse")
    with httpx.Client(base_url=shape.prefect_api, timeout=30) as prefect:
        for attempt in range(6):  # 503: a busy Prefect server did not answer in time
            read = prefect.get(f"/work_pools/{pool}")
            if read.status_code != 503:
                template = read.raise_for_status().json()["base_job_template"]
                template["variables"]["properties"]["command"]["default"] = command
                patched = prefect.patch(f"/work_pools/{pool}", json={"base_job_template": template})
                if patched.status_code != 503:
                    patched.raise_for_status()
                    return
            time.sleep(2 * (attempt + 1))
        raise RuntimeError("the Prefect server answered 503 six times: too busy to switch the pool's command")


def resume_schedules(shape: Shape) -> None:
    with httpx.Client(base_url=shape.prefect_api, timeout=30) as prefect:
        for deployment in prefect.post("/deployments/filter", json={}).json():
            if deployment.get("schedules"):
                prefect.post(f"/deployments/{deployment['id']}/resume_deployment").raise_for_status()


def stack_pss_mb(shape: Shape) -> float:
    """The PSS of every process below ``up`` (and PostgreSQL's and Redis's), in MB."""
    table = process_table()
    roots = [shape.machine.process.pid]  # type: ignore[union-attr]
    if shape.postgres:
        roots.append(int((shape.postgres.data / "postmaster.pid").read_text().split()[0]))
    if shape.redis and shape.redis.process:
        roots.append(shape.redis.process.pid)
    total = 0
    for root in roots:
        for pid in tree(root, table):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
    return total / 1024


def at_rest_with_schedules(shape: Shape, seconds: float) -> tuple[float, dict[str, float], float]:
    """Cores used and the peak PSS over ``seconds`` with the sweeps running on their schedules."""
    resume_schedules(shape)
    mark = shape.mark()
    peak = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, stack_pss_mb(shape))
        time.sleep(1)
    usage = shape.since(mark)
    cores = usage.cores()
    return sum(cores.get(kind, 0.0) for kind in KINDS), cores, peak


def small_export(shape: Shape, api: httpx.Client, organization: str, export_id: str,
                 ) -> tuple[float, dict[str, float]]:
    """Trigger once; wall seconds to completed and run process gone, and each kind's CPU-s minus idle."""
    mark = shape.mark()
    run = api.post(f"/organizations/{organization}/exports/{export_id}/trigger")
    run.raise_for_status()
    deadline = time.monotonic() + 300
    while (status := api.get(run.json()["status_url"]).json())["status"] not in ("completed", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"small export not done in 300 s: {status}")
        time.sleep(0.2)  # a client polling a run's status (each poll is an API request the stack pays for)
    while flow_run_processes(shape) and time.monotonic() < deadline:
        time.sleep(0.05)
    seconds = time.monotonic() - mark.at
    time.sleep(2)  # Prefect records the run's last task-run events up to a second later
    usage = shape.since(mark)
    if status["status"] != "completed":
        raise RuntimeError(f"small export: {status}")
    per_kind = usage.per_unit_ms(shape.idle_cores, 1)
    return seconds, {kind: per_kind[kind] / 1000 for kind in KINDS if kind in per_kind}


def flow_run_processes(shape: Shape) -> list[int]:
    """Flow-run processes now: a worker's children (its clients or fresh engines) and the fork server's."""
    table = process_table()
    children = children_of(table)
    found = []
    for pid in children.get(shape.machine.process.pid, []):  # type: ignore[union-attr]
        command = table[pid].command
        if "stack.prefect_worker start" in command or "stack.flow_run_forks" in command:
            found += children.get(pid, [])
    return found


def measure(shape: Shape, args: argparse.Namespace, sink_url: str) -> dict[str, WayFigures]:
    figures = {way: WayFigures() for way in WAYS}
    for way, command in WAYS.items():
        set_flow_run_command(shape, command)
        say(f"{shape.name}, {way}: {args.idle_seconds:.0f} s at rest, sweeps on their schedules")
        figure = figures[way]
        figure.idle_cores, figure.idle_by_kind, figure.peak_pss_mb = at_rest_with_schedules(shape, args.idle_seconds)
    pause_schedules(shape)
    measure_idle(shape, 10)
    organization, key = seed_export(shape, SMALL_EXPORT)
    body = {"name": "costs", "type": "elasticsearch", "streams": ["inference_logs"], "config": {"url": sink_url},
            "credentials": SECRETS["elasticsearch"]}
    with httpx.Client(base_url=shape.api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        created = api.post(f"/organizations/{organization}/exports", json=body)
        created.raise_for_status()
        for way, command in WAYS.items():
            set_flow_run_command(shape, command)
            small_export(shape, api, organization, created.json()["id"])  # warm: pages in the modules
            runs = [small_export(shape, api, organization, created.json()["id"]) for _ in range(args.runs)]
            figures[way].export_seconds = [seconds for seconds, _ in runs]
            figures[way].export_cpu = [sum(by_kind.values()) for _, by_kind in runs]
            figures[way].export_by_kind = [by_kind for _, by_kind in runs]
            say(f"{shape.name}, {way}: small export median {statistics.median(figures[way].export_seconds):.2f} s, "
                f"{statistics.median(figures[way].export_cpu):.2f} CPU-s")
        if args.scheduled_exports:
            report_scheduled(shape.name, scheduled_exports(shape, api, organization, sink_url,
                                                           args.scheduled_exports, args.scheduled_minutes))
    return figures


@dataclass
class ScheduledFigures:
    exports: int
    seconds: float
    cores: float
    peak_pss_mb: float
    due: int  # runs whose expected start fell in the measured window
    started: int
    completed: int
    lateness: list[float]  # start - expected start, seconds (runs not started: now - expected start)


def scheduled_exports(shape: Shape, api: httpx.Client, organization: str, sink_url: str, count: int,
                      minutes: float) -> ScheduledFigures:
    """``count`` small exports, each on a one-minute schedule (the fork server's way), for ``minutes``."""
    set_flow_run_command(shape, FLOW_RUN_COMMAND)
    say(f"{shape.name}: creating {count} exports on a 1-minute schedule")
    for n in range(count):
        body = {"name": f"every-minute-{n}", "type": "elasticsearch", "streams": ["inference_logs"],
                "config": {"url": sink_url}, "credentials": SECRETS["elasticsearch"],
                "schedule": {"interval_seconds": 60}}
        # 503: Prefect did not answer in time, busy running the exports made so far (on SQLite, Prefect's
        # writes fail at once when another committed meanwhile, and its client backs off up to 32 s).
        for attempt in range(10):
            created = api.post(f"/organizations/{organization}/exports", json=body)
            if created.status_code != 503:
                break
            time.sleep(min(2**attempt, 30))
        created.raise_for_status()
    start = time.time()
    mark = shape.mark()
    peak = 0.0
    say(f"{shape.name}: {count} exports a minute for {minutes:g} min")
    while time.time() - start < minutes * 60:
        peak = max(peak, stack_pss_mb(shape))
        time.sleep(2)
    usage = shape.since(mark)
    end = time.time()
    runs = export_runs_due(shape, start, end - 60)  # due at least a minute before the end: had time to start
    lateness = []
    for run in runs:
        expected = parse_time(run["expected_start_time"])
        started = parse_time(run["start_time"]) if run.get("start_time") else end
        lateness.append(started - expected)
    cores = usage.cores()
    return ScheduledFigures(
        count, usage.seconds, sum(cores.get(kind, 0.0) for kind in KINDS), peak, len(runs),
        sum(1 for run in runs if run.get("start_time")),
        sum(1 for run in runs if run["state"]["type"] == "COMPLETED"), lateness,
    )


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def export_runs_due(shape: Shape, after: float, before: float) -> list[dict]:
    window = {"after_": datetime.fromtimestamp(after, UTC).isoformat(),
              "before_": datetime.fromtimestamp(before, UTC).isoformat()}
    runs: list[dict] = []
    with httpx.Client(base_url=shape.prefect_api, timeout=60) as prefect:
        while True:
            page = prefect.post("/flow_runs/filter", json={
                "flows": {"name": {"any_": ["export"]}},
                "flow_runs": {"expected_start_time": window},
                "limit": 200, "offset": len(runs),
            }).json()
            runs += page
            if len(page) < 200:
                return runs


def report_scheduled(shape: str, figures: ScheduledFigures) -> None:
    late = sorted(figures.lateness)
    p = (lambda q: late[min(len(late) - 1, int(q * len(late)))]) if late else (lambda q: float("nan"))
    print(f"\n{shape}, fork server, {figures.exports} exports on a 1-minute schedule for {figures.seconds:.0f} s: "
          f"{figures.cores:.2f} cores, peak PSS {figures.peak_pss_mb:,.0f} MB; runs due {figures.due}, "
          f"started {figures.started}, completed {figures.completed}; start lateness p50 {p(0.5):.1f} s, "
          f"p99 {p(0.99):.1f} s, max {late[-1] if late else float('nan'):.1f} s")


def report(results: dict[str, dict[str, WayFigures]]) -> None:
    print("\n| shape | unit | fresh interpreter | fork server | goal |")
    print("|---|---|---:|---:|---|")
    for shape, figures in results.items():
        old, new = figures["fresh interpreter"], figures["fork server"]
        rows = [
            ("one small export (10 records), trigger -> completed, wall s (median)",
             statistics.median(old.export_seconds), statistics.median(new.export_seconds), "<= 2", 2),
            ("one small export, CPU-s of the whole stack, idle subtracted (median)",
             statistics.median(old.export_cpu), statistics.median(new.export_cpu), "<= 0.3", 2),
            ("at rest, sweeps on their schedules: cores", old.idle_cores, new.idle_cores, "<= 0.03", 3),
            ("at rest: peak PSS of the stack, MB", old.peak_pss_mb, new.peak_pss_mb, "<= 1,000", 0),
        ]
        for label, before, after, goal, digits in rows:
            print(f"| {shape} | {label} | {before:,.{digits}f} | {after:,.{digits}f} | {goal} |")
    for shape, figures in results.items():
        for way, figure in figures.items():
            kinds = ", ".join(f"{kind} {cores:.3f}" for kind, cores in sorted((figure.idle_by_kind or {}).items())
                              if kind in KINDS)
            print(f"\n{shape}, {way}, at rest with schedules, cores by kind: {kinds}")
            print(f"{shape}, {way}, small exports: wall {[round(s, 2) for s in figure.export_seconds or []]}, "
                  f"CPU-s {[round(c, 2) for c in figure.export_cpu or []]}")
            runs = figure.export_by_kind or []
            medians = {kind: statistics.median(run.get(kind, 0.0) for run in runs) for kind in KINDS if runs}
            print(f"{shape}, {way}, small export CPU-s by kind (medians): "
                  + ", ".join(f"{kind} {cpu:.2f}" for kind, cpu in medians.items() if cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="small export runs per way (5)")
    parser.add_argument("--idle-seconds", type=float, default=120, help="at rest with schedules, per way (120)")
    parser.add_argument("--shapes", nargs="+", choices=["sqlite", "production"], default=["sqlite"])
    parser.add_argument("--scheduled-exports", type=int, default=200,
                        help="then this many small exports on a 1-minute schedule, fork server only (200; 0: none)")
    parser.add_argument("--scheduled-minutes", type=float, default=4, help="how long they run (4)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="modelpulse-costs-") as workdir, ExitStack() as stack:
        _, sink_url = start_es_fake(dict(os.environ, PYTHONPATH=str(ROOT)), stack)
        for name in args.shapes:
            with ExitStack() as shape_stack:
                # As `up` runs by default: workers poll for due runs every 10 s and are woken by a run
                # scheduled now (the test clusters poll every second).
                shape = start_shape(name, Path(workdir) / name, name == "production", shape_stack,
                                    PREFECT_WORKER_QUERY_SECONDS="10")
                results[name] = measure(shape, args, sink_url)
    report(results)


if __name__ == "__main__":
    main()
