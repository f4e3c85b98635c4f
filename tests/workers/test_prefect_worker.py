"""The worker ``up`` starts (``python -m stack.prefect_worker start ...``) loads no Prefect collection:
Prefect's own worker CLI imports ``prefect_aws`` (boto3) and ``prefect_gcp`` (the Google Cloud SDKs,
pandas, pyarrow) to look up a worker type that is Prefect's own, ~250 MB of an idle worker (issue 22).

Each test polls a real Prefect server once (``--run-once``) and reads what the worker imported from
Python's own import trace (``PYTHONPROFILEIMPORTTIME``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import WORKER_DIR
from tests.support.polling import wait_until
from tests.support.servers import start_process, stop_process

ROOT = Path(__file__).resolve().parents[2]
COLLECTION_PACKAGES = ("prefect_aws", "prefect_gcp", "boto3", "botocore", "google.cloud", "pandas", "pyarrow")


@pytest.fixture
def work_pool(prefect_server) -> str:
    name = f"import-probe-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(f"{prefect_server}/work_pools/", json={"name": name, "type": "process"}, timeout=30)
    answer.raise_for_status()
    return name


def imported_by_one_poll(command: list[str], pool: str) -> set[str]:
    """Every module a worker started with ``command`` imported while polling ``pool`` once."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [*command, "start", "--pool", pool, "--type", "process", "--run-once", "--name", pool],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    modules = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    assert "prefect.workers.process" in modules, "the import trace did not come through"
    return modules


@pytest.fixture
def prefect_worker():
    """``imported_by_one_poll`` (its own fixture, so that tests/conftest.py counts these tests slow: each
    starts a worker that imports Prefect)."""
    return imported_by_one_poll


def loaded(modules: set[str]) -> list[str]:
    return [p for p in COLLECTION_PACKAGES if any(m == p or m.startswith(p + ".") for m in modules)]


def test_the_worker_up_starts_polls_without_loading_prefect_collections(work_pool, prefect_worker):
    assert loaded(prefect_worker([sys.executable, "-m", "stack.prefect_worker"], work_pool)) == []


def test_prefects_own_worker_cli_loads_them(work_pool, prefect_worker):
    """What the test above guards against: without ``without_collections`` they are loaded (if a Prefect
    upgrade stops loading them, this fails and the seeding in stack/prefect_worker.py can go)."""
    assert {"prefect_aws", "prefect_gcp"} <= set(
        loaded(prefect_worker([sys.executable, "-m", "prefect", "worker"], work_pool))
    )


def test_each_runs_environment_starts_from_one_dump_of_the_workers_settings(monkeypatch):
    """``settings_environment_once``: the same environment Prefect would build, computed once per
    settings object, a copy for each run, and computed again when the settings change."""
    from prefect.settings import PREFECT_API_URL, Settings, get_current_settings, temporary_settings
    from prefect.workers.base import BaseJobConfiguration
    from prefect.workers.process import ProcessJobConfiguration

    from stack.prefect_worker import settings_environment_once

    # Restored after the test: the patch is process-wide.
    monkeypatch.setattr(BaseJobConfiguration, "_base_environment", BaseJobConfiguration.__dict__["_base_environment"])
    dumps = []
    original_dump = Settings.to_environment_variables

    def counted(self, *args, **kwargs):
        dumps.append(self)
        return original_dump(self, *args, **kwargs)

    monkeypatch.setattr(Settings, "to_environment_variables", counted)
    expected = ProcessJobConfiguration._base_environment()
    assert expected == get_current_settings().to_environment_variables(exclude_unset=True)  # what is kept
    dumps.clear()

    settings_environment_once()
    first = ProcessJobConfiguration._base_environment()
    assert first == expected
    first["PREFECT_API_URL"] = "http://changed-by-one-run"
    assert ProcessJobConfiguration._base_environment() == expected  # each run gets its own copy
    assert len(dumps) == 1
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):
        assert ProcessJobConfiguration._base_environment()["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
    assert ProcessJobConfiguration._base_environment() == expected
    assert len(dumps) == 3


def test_the_workers_labels_reach_a_run_beside_its_start(monkeypatch):
    """``labels_beside_the_start``: Prefect's own labelling request, on a task of its own. The start goes
    on while the server has not answered; the labels still arrive; a request that fails for good is
    logged and the run goes on."""
    import anyio
    from prefect.workers.base import BaseWorker

    from stack.prefect_worker import labels_beside_the_start

    monkeypatch.setattr(BaseWorker, "_give_worker_labels_to_flow_run", BaseWorker._give_worker_labels_to_flow_run)
    labels_beside_the_start()

    class SlowServer:
        def __init__(self, fail: bool):
            self.fail, self.answer, self.labelled = fail, anyio.Event(), {}

        async def update_flow_run_labels(self, flow_run_id, labels):
            await self.answer.wait()
            if self.fail:
                raise RuntimeError("503 after every retry")
            self.labelled[flow_run_id] = labels

    warnings = []

    class Logger:
        def warning(self, message, *args, **_kwargs):
            warnings.append(message % args)

    class Worker:  # what Prefect's method reads of its worker
        name, type, _work_pool, _logger = "vm-1", "process", None, Logger()

        def __init__(self, client, group):
            self._client, self._runs_task_group = client, group

    async def main():
        run_id = uuid.uuid4()
        for fail in (False, True):
            server = SlowServer(fail)
            async with anyio.create_task_group() as group:
                worker = Worker(server, group)
                with anyio.fail_after(1):  # the start does not wait for the server's answer
                    await BaseWorker._give_worker_labels_to_flow_run(worker, run_id)
                assert server.labelled == {}
                server.answer.set()
            if not fail:
                assert server.labelled == {run_id: {"prefect.worker.name": "vm-1", "prefect.worker.type": "process"}}

    anyio.run(main)
    assert len(warnings) == 1 and warnings[0].startswith("could not label flow run"), warnings


def test_the_worker_polls_when_a_run_is_scheduled_and_when_a_slot_frees(prefect_services_server, tmp_path):
    """``wake_the_worker``: a worker polling every 5 minutes, one run at a time. Two runs created after its
    first poll: the first starts within seconds, woken by its ``prefect.flow-run.Scheduled`` event on
    Prefect's event stream; the second, which that poll had to leave (no slot), starts when the first
    ends. Prefect's own worker (or this one without the wake) waits for its next poll for each: minutes."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.support import flow_run_probe

    pool = f"wake-{uuid.uuid4().hex[:8]}"
    log = WORKER_DIR / f"{pool}.log"
    with temporary_settings(updates={PREFECT_API_URL: prefect_services_server}), get_client(sync_client=True) as client:
        deployment_id = flow_run_probe.deploy(client, pool)
        env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_API_URL=prefect_services_server,
                   PREFECT_WORKER_QUERY_SECONDS="300", MODELPULSE_HOME=str(tmp_path / "home"),
                   MODELPULSE_SWEEP_CHECK_SECONDS="0",
                   PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
        worker = start_process(
            [sys.executable, "-m", "stack.prefect_worker", "start", "--pool", pool, "--type", "process",
             "--name", pool, "--limit", "1"],
            log, env=env, cwd=ROOT,
        )

        def wait_for_start(marker: Path, what: str) -> None:
            try:
                wait_until(marker.exists, 60, what)
            except AssertionError as gave_up:
                raise AssertionError(f"{gave_up}; the worker's log:\n{log.read_text()[-5000:]}") from None

        try:
            wait_until(lambda: any(q.last_polled for q in client.read_work_queues(work_pool_name=pool)), 120,
                       "the worker's first poll")
            markers = [tmp_path / "first.json", tmp_path / "second.json"]
            for marker, seconds in zip(markers, (5, 0), strict=True):
                parameters = {"marker": str(marker), "sleep_seconds": seconds}
                client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
            wait_for_start(markers[0], "the first run to start")
            assert not markers[1].exists()  # one slot, held for 5 s more
            wait_for_start(markers[1], "the second run to start")
        finally:
            stop_process(worker)


def test_the_event_stream_wakes_for_its_pool_only_and_is_reopened_with_backoff(monkeypatch):
    """``_listen_for_scheduled_runs`` against a stand-in for Prefect's subscriber: a ``Scheduled`` event of
    another pool does not wake the worker, one of its own does; a stream that closes at once (a server
    serving none) is opened again after 1, 2, 4... s up to 30 s, not in a tight loop."""
    import asyncio

    import prefect.events.clients
    from prefect.events import Event

    from stack import prefect_worker

    def scheduled(pool: str) -> Event:
        return Event(
            event="prefect.flow-run.Scheduled",
            resource={"prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}"},
            related=[{"prefect.resource.id": f"prefect.work-pool.{uuid.uuid4()}", "prefect.resource.role": "work-pool",
                      "prefect.resource.name": pool}],
        )

    streams = [[scheduled("other-pool")], [scheduled("modelpulse")]] + [[] for _ in range(7)]
    opened, pauses = [], []

    class Subscriber:
        def __init__(self, events):
            self.events = events

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc_info):
            return None

        def __aiter__(self):
            return self

        async def __anext__(self):
            if not self.events:
                raise StopAsyncIteration
            return self.events.pop(0)

    def subscriber(filter, reconnection_attempts):  # noqa: A002 - Prefect's parameter name
        assert filter.event.name == ["prefect.flow-run.Scheduled"]
        opened.append(woken.is_set())
        return Subscriber(streams.pop(0))

    async def sleep(seconds):
        pauses.append(seconds)
        if not streams:
            raise asyncio.CancelledError

    class Worker:
        _work_pool_name = "modelpulse"

        class _logger:  # noqa: N801
            @staticmethod
            def info(*_args):
                pass

    monkeypatch.setattr(prefect.events.clients, "get_events_subscriber", subscriber)
    monkeypatch.setattr(prefect_worker.asyncio, "sleep", sleep)
    woken = asyncio.Event()

    async def main():
        with pytest.raises(asyncio.CancelledError):
            await prefect_worker._listen_for_scheduled_runs(Worker(), woken)

    asyncio.run(main())
    assert opened[:2] == [False, False]  # the other pool's event woke nothing
    assert opened[2] is True  # its own pool's did
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
