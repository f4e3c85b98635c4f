"""Alert rules benchmark: the webhook dispatcher's cost per event with 100 filters and 20 silences, beside none.

What filters and silences add is in the fan-out's planning (``tasks.webhooks.fanout._plan_fan_out``, what
a ``fan-out-events`` run does before it sends): claim the event, load its subscribed webhooks (and the
organization's silence set version, in the same statement), evaluate each webhook's filter and the active
silences, create the deliveries. Sending is the same either way, so it is left out. Two organizations in
one SQLite database (WAL, as ``make up``), each with N webhooks (default 100) subscribed to
``threshold.breached``:

- ``none``: no filter, no silence.
- ``rules``: every webhook has a filter (4 conditions: a glob, a severity order, an ``$or`` of a project
  and a number) that the events pass, and 20 silences are active whose matchers are evaluated but do not
  match (two conditions hold, the third fails): the worst case, every rule is evaluated and every
  webhook still gets its delivery, so both sides write the same rows.
- ``silenced``: the same rules, and the events match the last silence: each gets N ``silenced``
  deliveries instead of N pending ones.

Each round plans E events (default 500) per scenario in batches of 50 (the dispatcher's), alternating
scenarios; the figures are medians over rounds. Printed: planning per event (wall and CPU ms), and the
evaluation alone (filters and silences over one event, µs; cache warm, no database).

Then, end to end (``--only latency`` runs this part alone): event accepted -> first attempt at the
receiver, at R events/s (default 20) to 5 loopback receivers, through the real stack as
``bench/webhook_fanout.py`` runs it (a Prefect server on SQLite, the API under gunicorn, one webhook
dispatcher ``python -m flows.fan_out``, ModelPulse on SQLite), for two organizations side by side in one
run, alternating in rounds (default 3 rounds of 10 s each: 30 s per scenario):

- ``none``: 5 webhooks, no filter, no silence.
- ``rules``: 100 webhooks, each with a filter: the 5 pointing at the measured receivers pass the events,
  the other 95 turn them down at their last condition (every condition evaluated, no delivery); and 20
  silences active, each evaluated (2 of 3 conditions hold), none matching.

Both post the same ``threshold.breached`` body; each event gets 5 deliveries either way (checked in the
database). Goal: p50 < 250 ms, p99 < 1 s. Usage::

    PYTHONPATH=. python bench/alert_rules.py [--webhooks 100] [--silences 20] [--events 500] [--rounds 5]
        [--rate 20] [--latency-seconds 30] [--latency-rounds 3] [--only planning|latency]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def breach(model: str) -> dict:
    """A threshold.breached's data (the webhook tests'); imported here, not at the top: the test module
    imports Prefect, and the end-to-end part sets the stack's Prefect settings before anything does."""
    from tests.webhooks.test_throttle import breach as test_breach

    return test_breach(model)


BATCH = 50
FILTER = {
    "data.model": {"$glob": "fraud-*"},
    "data.severity": {"$gte": "warning"},
    "$or": [{"project_id": "payments"}, {"data.value": {"$gt": 1000}}],
}


def setup(url: str, organization: str, webhooks: int, silences: int, rules: bool) -> None:
    from store import silences as store_silences
    from store.db import session_scope
    from store.ids import new_id
    from store.models import Organization, Webhook, utcnow

    with session_scope(url) as session:
        session.add(Organization(id=organization))
        session.flush()
        session.add_all(
            Webhook(
                id=new_id("wh"),
                organization_id=organization,
                name=f"hook-{n}",
                url=f"https://hooks.example.com/{n}",
                events=["threshold.breached"],
                header_names=[],
                enabled=True,
                filter=FILTER | {"$or": [{"project_id": "payments"}, {"data.value": {"$gt": n}}]} if rules else None,
            )
            for n in range(webhooks)
        )
        now = utcnow()
        for n in range(silences if rules else 0):
            # The events are of project payments and severity error: these two hold, the model never does
            # (except the last silence's, for the "silenced" scenario's models).
            matchers = {
                "project_id": "payments",
                "data.severity": {"$gte": "error"},
                "data.model": {"$glob": f"silenced-{n}-*" if n == silences - 1 else f"churn-{n}-*"},
            }
            store_silences.create_silence(
                session, organization, matchers, now, now + timedelta(hours=2), "bench", "bench"
            )


def publish(url: str, organization: str, count: int, model: str) -> list[str]:
    from store.db import session_scope
    from store.events import record_event

    with session_scope(url) as session:
        return [
            record_event(session, organization, "threshold.breached", breach(model), "payments").id
            for _ in range(count)
        ]


def plan_all(url: str, event_ids: list[str]) -> tuple[float, float]:
    """Plan the events in the dispatcher's batches; (wall, CPU) ms per event."""
    from tasks.webhooks import fanout
    from tasks.webhooks.settings import get_webhook_settings

    settings = get_webhook_settings()
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(event_ids), BATCH):
        fanout._plan_fan_out(event_ids[start : start + BATCH], settings, url)
    count = len(event_ids)
    return (time.perf_counter() - wall) * 1000 / count, (time.process_time() - cpu) * 1000 / count


def evaluation_us(url: str, event_id: str, repeats: int = 2000) -> tuple[float, float]:
    """The filters of the event's webhooks, then the silences, over one event (webhooks loaded, caches
    warm, no database): µs per event for each."""
    from store import deliveries
    from store.db import session_scope
    from store.events import event_payload
    from tasks.webhooks import filters, silences

    with session_scope(url) as session:
        (event,) = deliveries.events_by_id(session, [event_id])
        webhooks, version = deliveries.subscribed_webhooks(session, event)
        payload = event_payload(event)
        silences.silencing(session, event, payload, version)  # loads once
        start = time.perf_counter()
        for _ in range(repeats):
            accepted = filters.accepting(webhooks, payload)
        filtering = time.perf_counter() - start
        assert len(accepted) == len(webhooks)
        start = time.perf_counter()
        for _ in range(repeats):
            silences.silencing(session, event, payload, version)
        silencing = time.perf_counter() - start
        return filtering * 1e6 / repeats, silencing * 1e6 / repeats


# --- end to end: event accepted -> first attempt, rules vs none ----------------------------------------

MEASURED = 5  # receivers, one webhook each, that every event reaches in both scenarios


def _event() -> dict:
    return {"type": "threshold.breached", "project_id": "payments", "data": breach("fraud-eu")}


def _passing_filter(n: int) -> dict:
    return FILTER | {"$or": [{"project_id": "payments"}, {"data.value": {"$gt": n}}]}


def _rejecting_filter(n: int) -> dict:
    # The glob and the severity hold; the `$or` fails (another project, a value the events never reach).
    return FILTER | {"$or": [{"project_id": f"other-{n}"}, {"data.value": {"$gt": 1000 + n}}]}


def _create_webhooks(api: str, key: str, organization: str, hooks: list[tuple[str, dict | None]]) -> None:
    """One webhook per (url, filter) through the API, the first alone (a fresh Prefect server's first
    secret makes its encryption key), the rest 8 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    headers = {"Authorization": f"Bearer {key}"}

    def create(indexed: tuple[int, tuple[str, dict | None]]) -> None:
        index, (url, filter_) = indexed
        body = {"name": f"receiver-{index}", "url": url, "events": ["threshold.breached"]}
        if filter_ is not None:
            body["filter"] = filter_
        response = httpx.post(f"{api}/organizations/{organization}/webhooks", json=body, headers=headers, timeout=60)
        response.raise_for_status()

    indexed = list(enumerate(hooks))
    create(indexed[0])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, indexed[1:]))


def _create_silences(api: str, key: str, organization: str, count: int) -> None:
    import httpx

    from store.models import utcnow

    for n in range(count):
        body = {
            "matchers": {
                "project_id": "payments",
                "data.severity": {"$gte": "error"},
                "data.model": {"$glob": f"churn-{n}-*"},
            },
            "ends_at": (utcnow() + timedelta(hours=2)).isoformat(),
            "comment": "bench",
            "created_by": "bench",
        }
        headers = {"Authorization": f"Bearer {key}"}
        response = httpx.post(f"{api}/organizations/{organization}/silences", json=body, headers=headers, timeout=60)
        response.raise_for_status()


def _deliveries(organization: str) -> int:
    from sqlalchemy import func, select

    from store.db import session_scope
    from store.models import Delivery

    with session_scope() as session:
        query = select(func.count()).select_from(Delivery).where(Delivery.organization_id == organization)
        return session.scalar(query)


def latency(args: argparse.Namespace) -> dict[str, dict]:
    """Event accepted -> first attempt for both scenarios, alternating in rounds on one stack."""
    from bench.webhook_fanout import Stack, _environment
    from bench.webhook_load import Receivers, offer_events, percentile, warm_up

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-alert-rules-bench-"))
    print(f"logs in {workdir}", flush=True)
    env = _environment(workdir)
    stack = Stack(workdir, env)
    receivers = Receivers.start(MEASURED + 1, env)  # the last port: where the turned-down webhooks point
    organizations = {"none": "bench-none", "rules": "bench-rules"}
    results: dict[str, dict] = {name: {"latencies_ms": [], "rounds": [], "events": 0, "cpu_s": 0.0, "elapsed_s": 0.0}
                                for name in organizations}
    try:
        import httpx

        api, made = stack.start_prefect_and_api(*organizations.values())
        keys = dict(zip(organizations, made, strict=True))
        measured, spare = receivers.urls[:MEASURED], receivers.urls[MEASURED]
        _create_webhooks(api, keys["none"], organizations["none"], [(url, None) for url in measured])
        rules = [(url, _passing_filter(n)) for n, url in enumerate(measured)]
        rules += [(spare, _rejecting_filter(n)) for n in range(MEASURED, args.webhooks)]
        _create_webhooks(api, keys["rules"], organizations["rules"], rules)
        _create_silences(api, keys["rules"], organizations["rules"], args.silences)
        dispatcher = stack.start("webhook-dispatcher", [sys.executable, "-m", "flows.fan_out"])

        five = Receivers(receivers.process, measured)
        http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
        event = _event()
        for name, organization in organizations.items():  # not counted: the dispatcher is polling after these
            warm_up(http, api, keys[name], organization, "threshold.breached", five, event=event)
        before = {name: _deliveries(organization) for name, organization in organizations.items()}
        seconds = args.latency_seconds / args.latency_rounds
        from bench.process_cpu import tree_cpu_seconds

        for _ in range(args.latency_rounds):
            for name, organization in organizations.items():
                cpu = tree_cpu_seconds(dispatcher.pid)
                load = offer_events(
                    http, api, keys[name], organization, "threshold.breached", args.rate, seconds, five, event=event
                )
                result = results[name]
                result["cpu_s"] += tree_cpu_seconds(dispatcher.pid) - cpu
                result["elapsed_s"] += load.elapsed_s
                result["events"] += load.events
                result["expected"] = result.get("expected", 0) + load.expected
                result["latencies_ms"] += load.latencies_ms
                result["rounds"].append((load.p(0.50), load.p(0.99)))
        http.close()
        for name, organization in organizations.items():
            made = _deliveries(organization) - before[name]
            # 5 per event in both: the turned-down webhooks made none (and so were never sent to).
            assert made == results[name]["events"] * MEASURED, (name, made)
    finally:
        stack.stop()
        receivers.stop()
    for result in results.values():
        values = result["latencies_ms"]
        result |= {
            "deliveries": len(values),
            "p50_ms": percentile(values, 0.50),
            "p90_ms": percentile(values, 0.90),
            "p99_ms": percentile(values, 0.99),
            "max_ms": max(values),
            "dispatcher_cores": result["cpu_s"] / result["elapsed_s"],
        }
    return results


def print_latency(args: argparse.Namespace, results: dict[str, dict]) -> None:
    labels = {
        "none": f"{MEASURED} webhooks, no filters, no silences",
        "rules": f"{args.webhooks} filters ({MEASURED} passing) + {args.silences} silences (none matching)",
    }
    print(
        f"\nevent accepted -> first attempt, {args.rate:g} events/s x {MEASURED} receivers, "
        f"{args.latency_rounds} alternating rounds of {args.latency_seconds / args.latency_rounds:g} s per scenario, "
        f"1 dispatcher, {os.cpu_count()} CPUs (goal: p50 < 250 ms, p99 < 1 s):"
    )
    for name, result in results.items():
        rounds = ", ".join(f"{p50:.0f}/{p99:.0f}" for p50, p99 in result["rounds"])
        print(
            f"  {labels[name]:<58} {result['deliveries']}/{result['expected']} delivered  "
            f"p50 {result['p50_ms']:.0f} ms  p90 {result['p90_ms']:.0f} ms  p99 {result['p99_ms']:.0f} ms  "
            f"max {result['max_ms']:.0f} ms  (rounds p50/p99: {rounds})  "
            f"dispatcher {result['dispatcher_cores']:.2f} cores"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--silences", type=int, default=20)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="end to end: events/s")
    parser.add_argument("--latency-seconds", type=float, default=30.0, help="end to end: seconds per scenario")
    parser.add_argument("--latency-rounds", type=int, default=3, help="end to end: alternations of the scenarios")
    parser.add_argument("--only", choices=["planning", "latency"], help="run one part (default: both)")
    args = parser.parse_args()

    if args.only != "planning":
        # Before anything imports Prefect: the stack's settings (a Prefect server of its own) in the environment.
        results = latency(args)
        print_latency(args, results)
    if args.only != "latency":
        planning(args)


def planning(args: argparse.Namespace) -> None:
    from store.migrate import upgrade

    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{Path(workdir) / 'modelpulse.db'}"
        upgrade(url)
        scenarios = {  # name -> (organization, model of its events)
            "none": ("bench-none", "fraud-eu"),
            "rules": ("bench-rules", "fraud-eu"),
            "silenced": ("bench-rules", f"silenced-{args.silences - 1}-eu"),
        }
        setup(url, "bench-none", args.webhooks, args.silences, rules=False)
        setup(url, "bench-rules", args.webhooks, args.silences, rules=True)
        plan_all(url, publish(url, "bench-none", BATCH, "fraud-eu"))  # warm up: imports, connections, caches
        plan_all(url, publish(url, "bench-rules", BATCH, "fraud-eu"))
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in scenarios}
        for _ in range(args.rounds):
            for name, (organization, model) in scenarios.items():
                figures[name].append(plan_all(url, publish(url, organization, args.events, model)))
        evaluation = {
            name: evaluation_us(url, publish(url, organization, 1, model)[0])
            for name, (organization, model) in scenarios.items()
            if name != "silenced"
        }

    print(
        f"dispatcher planning per event, {args.webhooks} webhooks subscribed, {args.events} events x "
        f"{args.rounds} rounds in batches of {BATCH} (SQLite; medians):"
    )
    labels = {
        "none": "no filters, no silences",
        "rules": f"{args.webhooks} filters + {args.silences} silences (none matching)",
        "silenced": f"{args.webhooks} filters + {args.silences} silences (the last matching)",
    }
    base_wall = statistics.median(wall for wall, _ in figures["none"])
    for name, rounds in figures.items():
        wall = statistics.median(w for w, _ in rounds)
        cpu = statistics.median(c for _, c in rounds)
        print(f"  {labels[name]:<52} {wall:7.2f} ms wall  {cpu:7.2f} ms CPU  (x{wall / base_wall:.2f})")
    print("evaluation alone per event (caches warm, no database):")
    for name, (filtering, silencing) in evaluation.items():
        print(f"  {labels[name]:<52} filters {filtering:7.1f} µs  silences {silencing:6.1f} µs")


if __name__ == "__main__":
    main()
