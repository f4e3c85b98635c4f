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
Usage::

    PYTHONPATH=. python bench/alert_rules.py [--webhooks 100] [--silences 20] [--events 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.webhooks.test_throttle import breach  # noqa: E402 (a threshold.breached's data)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--silences", type=int, default=20)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

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
