"""The export as operators run it: deployed from ``prefect.yaml``, executed by a process worker
started in the repository root. A worker killed mid-run loses nothing and duplicates nothing, and no
secret shows up in Prefect's flow-run parameters, logs or artifacts."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.states import Crashed

from flows.export_deployments import start_export_run, sync_export_deployment
from store.db import session_scope
from store.export_runs import create_run, read_watermark
from store.models import Export, ExportRun
from tests.conftest import ROOT, WORKER_DIR
from tests.exports import seed
from tests.support.polling import wait_until
from tests.support.servers import start_process, stop_process

RECORDS = 600
PAGE = 30
SECRET = "es-secret-pw-7f3a"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the worker starts flow runs in their own sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_worker(pool: str, name: str):
    env = dict(os.environ, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
    return start_process(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--name", name],
        WORKER_DIR / f"{name}.log",
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def prefect_worker():
    """``prefect_worker(pool, name)``: a ``prefect worker start`` subprocess (its own fixture, so
    tests/conftest.py can tell this test from the fast ones)."""
    return start_worker



def trigger(export_id: str) -> tuple[str, str]:
    with session_scope() as session:
        export = session.get_one(Export, export_id)
        run = create_run(session, export.id, export.organization_id)
        session.flush()
        run_id = run.id
    flow_run_id = start_export_run(export, run_id, None)
    with session_scope() as session:
        session.get_one(ExportRun, run_id).flow_run_id = str(flow_run_id)
    return run_id, str(flow_run_id)


def flow_run_final(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state.is_final()


def run_status(run_id: str) -> str:
    with session_scope() as session:
        return session.get_one(ExportRun, run_id).status


@pytest.mark.timeout(420)
def test_killed_worker_then_new_run_ships_every_record_exactly_once(export_template, org_id, es, prefect_worker):
    seed.inference_logs(org_id, RECORDS)
    export_id = seed.export(
        org_id,
        "elasticsearch",
        {"url": es.url, "page_size": PAGE},
        {"username": "elastic", "password": SECRET},
        streams=("inference_logs",),
    )
    with session_scope() as session:
        sync_export_deployment(session.get_one(Export, export_id))
    es.latency = 0.15  # each page takes a while, so the kill lands mid-run

    worker = prefect_worker(export_template, "exports-worker-1")
    try:
        first_run, first_flow_run = trigger(export_id)
        wait_until(lambda: es.bulk_requests >= 6, 180, "the first run to ship a few pages", every=0.3)
        for pid in [*descendants(worker.pid), worker.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.wait(timeout=10)
    finally:
        stop_process(worker)
    es.latency = 0.0

    with session_scope() as session:
        mark = read_watermark(session, export_id, "inference_logs")
    assert mark is not None and len(es.ids("modelpulse-inference-logs")) < RECORDS, "killed mid-run"
    # What Prefect's zombie detection does once heartbeats stop: the slot of export/<id> is freed.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(first_flow_run, Crashed(message="worker killed"), force=True)

    worker = prefect_worker(export_template, "exports-worker-2")
    try:
        second_run, second_flow_run = trigger(export_id)
        wait_until(lambda: flow_run_final(second_flow_run), 240, "the second flow run to finish", every=0.3)
    finally:
        stop_process(worker)

    assert run_status(second_run) == "completed"
    assert run_status(first_run) == "failed", "the killed run is marked abandoned, not left running"
    shipped = es.ids("modelpulse-inference-logs")
    assert len(shipped) == RECORDS, "every record present"
    resent = sum(count - 1 for count in es.index_operations.values())
    # At most the pages in flight when the worker died (config.concurrency, default 2) come again.
    assert resent <= 2 * PAGE, "the second run resumed from the watermark"

    with get_client(sync_client=True) as client:
        for flow_run_id in (first_flow_run, second_flow_run):
            flow_run = client.read_flow_run(flow_run_id)
            assert SECRET not in json.dumps(flow_run.parameters)
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
            assert logs, "the run logged (so the absence of the secret means something)"
            assert all(SECRET not in log.message for log in logs)
        artifacts = client.read_artifacts()
        summaries = [a for a in artifacts if a.key == f"export-{export_id.replace('_', '-')}"]
        assert summaries and all(SECRET not in json.dumps(a.data) for a in artifacts)
