"""Two machines, one installation: what one machine's API accepts, the other's processes may carry out,
and every run shows in the one Prefect UI."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.elasticsearch import ElasticsearchFake
from tests.support.metrics import samples_of, value
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver

pytestmark = [pytest.mark.production, pytest.mark.timeout(900)]


def test_both_machines_serve_one_installation(cluster):
    a, b = cluster.api(cluster.a), cluster.api(cluster.b)
    # One database: a record made through one machine is read through the other.
    with Receiver() as receiver:
        hook = b.post(
            "/organizations/default/webhooks",
            json={"name": "two-machines", "url": receiver.url, "events": ["drift.detected"]},
        )
        assert hook.status_code == 201, hook.text
        assert a.get(f"/organizations/default/webhooks/{hook.json()['id']}").status_code == 200
        secret = hook.json()["signing_secret"]

        sent = [
            machine.post(
                "/organizations/default/events", json={"type": "drift.detected", "data": {"model": "churn", "n": n}}
            )
            for n, machine in enumerate([a, b] * 10)
        ]
        assert {response.status_code for response in sent} == {202}
        event_ids = {response.json()["id"] for response in sent}
        wait_until(lambda: len({r.headers["webhook-id"] for r in receiver.received}) == 20, 120, "20 deliveries")
        assert {r.verify(secret)["id"] for r in receiver.received} == event_ids

    with ElasticsearchFake() as es:
        logs = [
            {"model": "churn", "features": {"age": n}, "prediction": 0.1 * (n % 10), "request_id": f"r{n}"}
            for n in range(300)
        ]
        assert a.post("/organizations/default/inference-logs", json={"records": logs}).status_code == 202
        export = b.post(
            "/organizations/default/exports",
            json={
                "name": "kibana",
                "type": "elasticsearch",
                "streams": ["inference_logs"],
                "config": {"url": es.url, "page_size": 100},
                "credentials": {"username": "elastic", "password": "changeme"},
            },
        )
        assert export.status_code == 201, export.text
        run = b.post(f"/organizations/default/exports/{export.json()['id']}/trigger")
        assert run.status_code == 202, run.text
        status_url = run.json()["status_url"]
        finished = wait_until(
            lambda: (r := a.get(status_url).json())["status"] in ("completed", "failed") and r, 240, "the export run"
        )
        assert finished["status"] == "completed", finished
        assert len(es.ids("modelpulse-inference-logs")) == 300

    # Each machine's /metrics sums its own processes (API workers, dispatchers, the worker's forked
    # runs): together, exactly the work done; the gauges come from the one database.
    def scraped() -> list[dict]:
        return [samples_of(machine.get("/metrics").text) for machine in (a, b)]

    def shipped(samples: dict) -> float:
        return sum(v for (name, labels), v in samples.items()
                   if name == "modelpulse_export_records_total" and ("outcome", "shipped") in labels)

    machines = wait_until(lambda: (m := scraped()) and sum(shipped(s) for s in m) == 300 and m, 60, "300 shipped")
    accepted = [value(s, "modelpulse_events_accepted_total", organization="default", type="drift.detected")
                for s in machines]
    assert accepted == [10, 10]
    delivered = sum(value(s, "modelpulse_webhook_attempts_total", organization="default", outcome="delivered")
                    for s in machines)
    assert delivered == 20
    assert [value(s, "modelpulse_outbox_pending") for s in machines] == [0, 0]

    # Both kinds of work are in the one Prefect server's history.
    prefect = httpx.Client(base_url=cluster.prefect_api_url, timeout=30)
    flow_run_url = f"/flow_runs/{run.json()['flow_run_id']}"
    # The export's own record is final a moment before the flow run reports its final state.
    state = wait_until(
        lambda: (s := prefect.get(flow_run_url).json()["state"]["type"]) not in ("RUNNING", "PENDING") and s,
        60,
        "the export's flow run to end",
    )
    assert state == "COMPLETED"
    # Task runs are recorded from their state events (websocket -> Redis -> the task-run recorder), a
    # second or two after the run; the fan-out above was long before, so this wait is a margin only.
    wait_until(
        lambda: prefect.post("/task_runs/filter", json={"task_runs": {"name": {"like_": "fan-out-"}}}).json(),
        30,
        "fan-out-events runs visible in Prefect",
    )
