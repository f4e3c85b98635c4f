"""What Prefect's server itself spends per unit of work: the floor under issue 22's cost goals.

    PYTHONPATH=. .venv/bin/python bench/prefect_floor.py [--shapes sqlite production] [--runs 100] [--events 2000]

(2-3 minutes a shape.) Each shape is brought up with ``modelpulse up`` (bench/capacity.py's shapes, the
schedules paused, the workers polling every 10 s as ``up`` runs them), then the Prefect server is driven
through its REST API and its events websocket directly, nothing of ModelPulse in the way, and the CPU
of the Prefect server (API and, on PostgreSQL + Redis, its services process), PostgreSQL and Redis is
read from /proc for each unit, their idle CPU subtracted:

- **a flow run's bare lifecycle**: ``POST /deployments/{id}/create_flow_run`` and three
  ``POST /flow_runs/{id}/set_state`` (Pending, Running, Completed), on a deployment of no work pool (no
  worker takes its runs). Every export run, sync and sweep is at least this;
- **one request of each kind a run's worker and engine make** (a flow run read, a deployment read,
  labels, one log line, a worker's poll for due runs), and beside them ``GET /health``, the server's
  cheapest answer (the raw baseline: what any request costs before Prefect does anything);
- **one Prefect event**, as the dispatcher emits ModelPulse's events (the events websocket, a
  checkpoint after each), beside a checkpoint every 50 and ``POST /events`` in batches of 50.

It prints one table per shape, CPU-ms per unit. Everything is on loopback, bounded, and stops what it
started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.capacity import Shape, measure_idle, pause_schedules, say, start_shape  # noqa: E402

PREFECT_KINDS = ("prefect api", "prefect services", "postgresql", "redis")


class RetryingClient(httpx.Client):
    """Retries a 503, as Prefect's own clients do: on SQLite, Prefect's server answers 503 to a write that
    met another connection's commit."""

    def send(self, request: httpx.Request, **kwargs) -> httpx.Response:  # type: ignore[override]
        for attempt in range(8):
            response = super().send(request, **kwargs)
            if response.status_code != 503:
                return response
            time.sleep(0.05 * 2**attempt)
        return response


def prefect_ms(shape: Shape, units: int, work: Callable[[], object]) -> tuple[float, dict[str, float]]:
    """Run ``work`` (``units`` units of it); CPU-ms per unit of Prefect's processes, in all and by kind.
    Waits a few seconds after it for what Prefect does behind its answers (events persisted, triggers)."""
    mark = shape.mark()
    work()
    time.sleep(5)
    per_unit = shape.since(mark).per_unit_ms(shape.idle_cores, units)
    by_kind = {kind: per_unit.get(kind, 0.0) for kind in PREFECT_KINDS if kind in per_unit}
    return sum(by_kind.values()), by_kind


def floor_deployment(prefect: httpx.Client) -> str:
    """A deployment of no work pool: runs created from it are never taken by a worker."""
    flow = prefect.post("/flows/", json={"name": "prefect-floor"}).raise_for_status().json()
    deployment = {"name": "floor", "flow_id": flow["id"], "entrypoint": "floor.py:floor", "parameters": {}}
    return prefect.post("/deployments/", json=deployment).raise_for_status().json()["id"]


def lifecycles(prefect: RetryingClient, deployment_id: str, runs: int) -> Callable[[], None]:
    def work() -> None:
        for _ in range(runs):
            run = prefect.post(f"/deployments/{deployment_id}/create_flow_run", json={}).raise_for_status().json()
            for state in ("PENDING", "RUNNING", "COMPLETED"):
                body = {"state": {"type": state}}
                accepted = prefect.post(f"/flow_runs/{run['id']}/set_state", json=body).raise_for_status().json()
                if accepted["status"] != "ACCEPT":
                    raise RuntimeError(f"Prefect did not accept {state}: {accepted}")

    return work


def requests_of_a_run(prefect: httpx.Client, deployment_id: str, pool: str) -> dict[str, Callable[[], httpx.Response]]:
    run = prefect.post(f"/deployments/{deployment_id}/create_flow_run", json={}).raise_for_status().json()
    log = {"name": "floor", "level": 20, "message": "one line", "timestamp": "2026-12-05T00:00:00Z",
           "flow_run_id": run["id"]}
    return {
        "GET /health (baseline)": lambda: prefect.get("/health"),
        "GET /flow_runs/{id}": lambda: prefect.get(f"/flow_runs/{run['id']}"),
        "GET /deployments/{id}": lambda: prefect.get(f"/deployments/{deployment_id}"),
        "PATCH /flow_runs/{id}/labels": lambda: prefect.patch(f"/flow_runs/{run['id']}/labels", json={"floor": "1"}),
        "POST /logs/ (one line)": lambda: prefect.post("/logs/", json=[log]),
        "POST /work_pools/{pool}/get_scheduled_flow_runs": lambda: prefect.post(
            f"/work_pools/{pool}/get_scheduled_flow_runs", json={}),
    }


def repeated(call: Callable[[], httpx.Response], times: int) -> Callable[[], None]:
    def work() -> None:
        for _ in range(times):
            call().raise_for_status()

    return work


def an_event(index: int):
    from prefect.events import Event

    return Event(
        event="modelpulse.drift.detected",
        resource={
            "prefect.resource.id": f"modelpulse.model.floor.churn-{index % 7}",
            "modelpulse.organization": "floor",
        },
        payload={"id": f"evt_{index}", "type": "drift.detected", "data": {"model": "churn", "value": 0.4}},
        id=uuid.uuid4(),
    )


def websocket_events(api_url: str, events: int, checkpoint_every: int) -> Callable[[], None]:
    async def emit() -> None:
        from prefect.events.clients import PrefectEventsClient

        async with PrefectEventsClient(api_url=api_url, checkpoint_every=checkpoint_every) as client:
            for index in range(events):
                await client.emit(an_event(index))

    return lambda: asyncio.run(emit())


def posted_events(prefect: httpx.Client, events: int, batch: int) -> Callable[[], None]:
    def work() -> None:
        for start in range(0, events, batch):
            body = [an_event(index).model_dump(mode="json") for index in range(start, min(events, start + batch))]
            prefect.post("/events", json=body).raise_for_status()

    return work


def measure(shape: Shape, args: argparse.Namespace) -> list[tuple[str, float, dict[str, float]]]:
    pool = shape.machine.env.get("MODELPULSE_WORK_POOL", "modelpulse")
    requests, events, api = 5 * args.runs, args.events, shape.prefect_api
    with RetryingClient(base_url=api, timeout=60) as prefect:
        deployment_id = floor_deployment(prefect)
        lifecycles(prefect, deployment_id, 5)()  # warm: the server's caches and prepared statements
        measure_idle(shape, args.idle_seconds)
        units: list[tuple[str, int, Callable[[], object]]] = [
            ("a flow run's bare lifecycle (create, Pending, Running, Completed: 4 requests)", args.runs,
             lifecycles(prefect, deployment_id, args.runs)),
            *((f"one {name}", requests, repeated(call, requests))
              for name, call in requests_of_a_run(prefect, deployment_id, pool).items()),
            ("one Prefect event, websocket, a checkpoint after each (the dispatcher's way)", events,
             websocket_events(api, events, 1)),
            ("one Prefect event, websocket, a checkpoint every 50", events, websocket_events(api, events, 50)),
            ("one Prefect event, `POST /events` in batches of 50", events, posted_events(prefect, events, 50)),
        ]
        rows = []
        for label, count, work in units:
            say(f"{shape.name}: {label} x {count}")
            rows.append((label, *prefect_ms(shape, count, work)))
    return rows


def report(name: str, rows: list[tuple[str, float, dict[str, float]]]) -> None:
    kinds = [kind for kind in PREFECT_KINDS if any(kind in by_kind for _, _, by_kind in rows)]
    print(f"\n### {name}: CPU-ms of Prefect's server per unit (idle subtracted)\n")
    print("| unit | " + " | ".join(kinds) + " | all |")
    print("|---|" + "---:|" * (len(kinds) + 1))
    for label, total, by_kind in rows:
        print(f"| {label} | " + " | ".join(f"{by_kind.get(kind, 0.0):.2f}" for kind in kinds) + f" | **{total:.2f}** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=["sqlite", "production"], default=["sqlite", "production"])
    parser.add_argument("--runs", type=int, default=100, help="bare flow-run lifecycles (100); 5x as many requests")
    parser.add_argument("--events", type=int, default=2000, help="Prefect events each way (2000)")
    parser.add_argument("--idle-seconds", type=float, default=10, help="idle CPU measured for this long (10)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="modelpulse-prefect-floor-") as workdir:
        for name in args.shapes:
            with ExitStack() as stack:
                shape = start_shape(name, Path(workdir) / name, name == "production", stack, dispatchers=1,
                                    PREFECT_WORKER_QUERY_SECONDS="10")
                pause_schedules(shape)
                results[name] = measure(shape, args)
    print(f"\n## Prefect's floor: `{' '.join(['bench/prefect_floor.py', *sys.argv[1:]])}`")
    print(f"\n{os.cpu_count()} cores; load average {'/'.join(f'{v:.2f}' for v in os.getloadavg())} at the end.")
    for name, rows in results.items():
        report(name, rows)


if __name__ == "__main__":
    main()
