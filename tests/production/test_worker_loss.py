"""A worker killed (kill -9, with the flow run it was running) in the middle of an export of 200,000
records: nothing by hand. Prefect's zombie detection (heartbeats + the automation `prefect-setup`
creates) marks the silent run Crashed, which frees the export's concurrency slot; the export's next
scheduled run, on whichever machine's worker takes it, resumes from the watermark. Elasticsearch ends
up with every record exactly once."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select

from flows.zombie_runs import AUTOMATION_NAME
from store.db import get_engine, session_scope
from store.export_streams import STREAMS
from store.models import InferenceLog
from tests.fakes.elasticsearch import ElasticsearchFake
from tests.support.polling import wait_until
from tests.support.processes import descendants

pytestmark = [pytest.mark.production, pytest.mark.timeout(900)]

RECORDS = 200_000
PAGE = 5_000
INDEX = "modelpulse-inference-logs"
ORG = "default"  # the organization whose key `up` printed
WORKER = "stack.prefect_worker start"


def seed_inference_logs(database_url: str, count: int, chunk: int = 20_000) -> None:
    """``count`` inference logs of organization ``default``, written straight into the cluster's database."""
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for start in range(0, count, chunk):
        rows = [
            {
                "organization_id": ORG,
                "model": "churn",
                "model_version": "3",
                "timestamp": base + timedelta(seconds=n),
                "request_id": f"req-{n}",
                "features": {"age": 30 + n % 40, "plan": "pro"},
                "prediction": {"churn": 0.25},
                "latency_ms": 12.5,
            }
            for n in range(start, min(start + chunk, count))
        ]
        with session_scope(database_url) as session:
            session.execute(insert(InferenceLog), rows)


def expected_ids(database_url: str) -> set[str]:
    stream = STREAMS["inference_logs"]
    with session_scope(database_url) as session:
        ids = session.scalars(select(InferenceLog.id).where(InferenceLog.organization_id == ORG))
        return {stream.record_id(raw) for raw in ids}


def running_flow_runs(prefect: httpx.Client, deployment_id: str) -> list[dict]:
    response = prefect.post(
        "/flow_runs/filter",
        json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": ["RUNNING"]}}}},
    )
    response.raise_for_status()
    return response.json()


def process_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for its new parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_killed_worker_the_next_run_completes_the_export_exactly_once(cluster):
    started = time.monotonic()

    def progress(what: str) -> None:  # where the time went, in the output of a failure
        print(f"[{time.monotonic() - started:6.1f}s] {what}", flush=True)

    database_url = cluster.database_url
    try:
        seed_inference_logs(database_url, RECORDS)
        with session_scope(database_url) as session:
            assert session.scalar(select(func.count()).select_from(InferenceLog)) == RECORDS
        ids = expected_ids(database_url)
    finally:
        get_engine(database_url).dispose()  # the test holds no connection while the cluster runs
    progress(f"seeded {RECORDS} inference logs")

    api = cluster.api(cluster.a)
    prefect = httpx.Client(base_url=cluster.prefect_api_url, timeout=30)
    automations = prefect.post("/automations/filter", json={}).json()
    assert [a["name"] for a in automations].count(AUTOMATION_NAME) == 1, "prefect-setup created it once"

    with ElasticsearchFake(keep_sources=False) as es:
        es.latency = 0.02  # a little per 500-document request, so the kill lands mid-run
        export = api.post(
            f"/organizations/{ORG}/exports",
            json={
                "name": "kibana-200k",
                "type": "elasticsearch",
                "streams": ["inference_logs"],
                "config": {"url": es.url, "page_size": PAGE},
                "credentials": {"username": "elastic", "password": "changeme"},
                # What starts the run after the crash: the export's own schedule.
                "schedule": {"interval_seconds": 60},
            },
        )
        assert export.status_code == 201, export.text
        export_id = export.json()["id"]
        trigger = api.post(f"/organizations/{ORG}/exports/{export_id}/trigger")
        assert trigger.status_code == 202, trigger.text
        deployment_id = prefect.get(f"/deployments/name/export/{export_id}").json()["id"]

        wait_until(lambda: len(es.index_operations) >= 3 * PAGE, 300, "the export to ship a few pages")
        progress("the export is shipping")
        (killed,) = wait_until(lambda: running_flow_runs(prefect, deployment_id), 30, "the running export run")
        flow_run_pid = int(str(killed["infrastructure_pid"]).rsplit(":", 1)[-1])

        # Which machine's worker runs it: the flow-run process is a child of one `prefect worker`.
        owners = [
            (machine, worker_pid)
            for machine in cluster.machines
            for worker_pid in machine.processes(WORKER)
            if flow_run_pid in {pid for pid, _ in descendants(worker_pid)}
        ]
        assert len(owners) == 1, f"flow-run process {flow_run_pid} under exactly one worker: {owners}"
        machine, worker_pid = owners[0]
        for pid in [worker_pid, *(pid for pid, _ in descendants(worker_pid))]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: process_gone(flow_run_pid) and process_gone(worker_pid), 30, "the killed processes to go")
        shipped_when_killed = len(es.index_operations)
        progress(f"killed {machine.name}'s worker {worker_pid} and flow run {killed['id']} at {shipped_when_killed}")
        es.latency = 0.0
        assert 0 < shipped_when_killed < RECORDS, "killed mid-run"
        assert prefect.get(f"/flow_runs/{killed['id']}").json()["state"]["type"] == "RUNNING", (
            "nothing told Prefect: the run is a zombie until its heartbeats are missed"
        )

        # Nobody touches Prefect or the database from here on.
        crashed = wait_until(
            lambda: (run := prefect.get(f"/flow_runs/{killed['id']}").json())["state"]["type"] == "CRASHED" and run,
            300,
            "zombie detection to mark the killed run Crashed",
        )
        assert "heartbeat" in crashed["state"]["message"], crashed["state"]
        progress("the killed run is Crashed")

        def finished_rerun() -> dict | None:
            runs = api.get(f"/organizations/{ORG}/exports/{export_id}/runs", params={"limit": 100}).json()["items"]
            done = [r for r in runs if r["flow_run_id"] != killed["id"] and r["status"] == "completed"]
            return len(es.index_operations) == RECORDS and done and runs

        runs = wait_until(finished_rerun, 300, "a later run to complete the export")
        progress("a later run completed the export")
        # The supervisor of `up` started the killed worker again.
        assert [pid for pid in machine.processes(WORKER) if pid != worker_pid], f"{machine.name} runs a worker again"

        shipped = es.ids(INDEX)
        assert len(shipped) == RECORDS and shipped == ids, "every record present"
        assert min(es.index_operations.values()) == 1
        resent = sum(count - 1 for count in es.index_operations.values())
        # At most the pages in flight at the kill (config.concurrency, default 2) are sent again.
        assert resent <= 2 * PAGE, f"the next run resumed from the watermark; {resent} documents sent again"

    killed_record = next(r for r in runs if r["flow_run_id"] == killed["id"])
    assert killed_record["status"] == "failed", killed_record
    assert "abandoned" in killed_record["error"], killed_record
    # A page counts in the run that recorded it, with its watermark: killed + later runs add up to all.
    assert sum(r["streams"].get("inference_logs", {}).get("shipped", 0) for r in runs) == RECORDS

    rerun = next(r for r in runs if r["flow_run_id"] != killed["id"] and r["status"] == "completed")
    wait_until(
        lambda: prefect.get(f"/flow_runs/{rerun['flow_run_id']}").json()["state"]["type"] == "COMPLETED",
        60,
        "Prefect to record the completed run's final state",
    )
    history = prefect.post(
        "/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    ).json()
    assert {"CRASHED", "COMPLETED"} <= {run["state"]["type"] for run in history}, "both in the Prefect UI"
