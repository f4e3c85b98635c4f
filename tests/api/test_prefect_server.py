"""`python -m stack.prefect_server`: Prefect's server whose background-task (Docket) worker waits on its
stream for a second at a time, not 250 ms; a task added meanwhile still runs at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from docket import Docket
from prefect.server.api import background_workers

from stack.prefect_server import DOCKET_CHECK_SECONDS, quiet_docket_worker
from stack.topology import role_commands
from store.settings import Settings


@pytest.fixture
def prefects_worker(monkeypatch):
    """Prefect's ``Worker`` as ``background_worker`` builds it, put back after the test."""
    monkeypatch.setattr(background_workers, "Worker", background_workers.Worker)


def test_up_runs_prefects_server_through_the_wrapper(tmp_path):
    command = role_commands(Settings(home=tmp_path))["prefect-server"]
    assert command[1:4] == ["-m", "stack.prefect_server", "start"]


def test_the_worker_waits_a_second_at_a_time(prefects_worker):
    quiet_docket_worker()
    worker = background_workers.Worker(Docket(name="quiet", url="memory://"))
    assert worker.minimum_check_interval == timedelta(seconds=DOCKET_CHECK_SECONDS)
    assert worker.scheduling_resolution == timedelta(seconds=DOCKET_CHECK_SECONDS)


def test_a_task_added_while_the_worker_waits_runs_at_once(prefects_worker):
    """With a 5 s wait, a task that had to wait it out would run seconds late: the blocking read of the
    stream returns when the task arrives (Docket's in-memory Redis here: the SQLite stack's)."""
    quiet_docket_worker(5.0)
    ran: list[float] = []

    async def mark() -> None:
        ran.append(time.monotonic())

    async def scenario() -> float:
        async with Docket(name=f"quiet-{uuid.uuid4().hex[:8]}", url="memory://") as docket:
            docket.register(mark)
            async with background_workers.Worker(docket) as worker:
                running = asyncio.create_task(worker.run_forever())
                try:
                    await asyncio.sleep(1.0)  # the worker is in its 5 s read by now
                    added = time.monotonic()
                    await docket.add(mark)()
                    while not ran:
                        await asyncio.sleep(0.01)
                    return ran[0] - added
                finally:
                    running.cancel()

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) < 2.5
