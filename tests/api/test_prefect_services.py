"""`python -m stack.prefect_services`: Prefect's services in one process that exits when one of them
stops by itself (Prefect's own runner keeps the process alive without it), so `up` starts it again.

The services here are Prefect ``Service`` subclasses standing in for the real ones, whose failure
(the task-run recorder's consumer ending on a database outage) takes a PostgreSQL restart under load
to provoke; tests/production/test_dependency_restarts.py runs the real ones through restarts."""

from __future__ import annotations

import asyncio

from prefect.server.services.base import Service

from stack.prefect_services import watch_services


class _Double(Service):
    events: list[str] = []

    @classmethod
    def service_settings(cls):  # noqa: ANN206 - a double: never enabled through settings
        raise NotImplementedError

    async def stop(self) -> None:
        self.events.append(f"{self.name} stopped")


class Steady(_Double):
    def __init__(self) -> None:
        super().__init__()
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        self.events.append("Steady started")
        await self.stopped.wait()

    async def stop(self) -> None:
        await super().stop()
        self.stopped.set()


class Failing(_Double):
    async def start(self) -> None:
        await asyncio.sleep(0.2)
        raise asyncio.CancelledError  # what asyncpg surfaces for a lost connection, through the consumer


def test_a_service_that_stops_by_itself_ends_the_process_run(caplog):
    _Double.events = events = []
    ended = asyncio.run(asyncio.wait_for(watch_services([Steady(), Failing()], asyncio.Event()), 30))
    assert ended == "Failing"
    assert "Steady started" in events and "Steady stopped" in events  # the others are stopped, not left running
    assert "the Prefect service Failing stopped by itself (was cancelled)" in caplog.text


def test_a_stop_request_stops_every_service_and_names_none():
    _Double.events = events = []

    async def stop_soon() -> str | None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await watch_services([Steady()], stop)

    assert asyncio.run(asyncio.wait_for(stop_soon(), 30)) is None
    assert events == ["Steady started", "Steady stopped"]


def test_the_services_process_leaves_the_websocket_distributors_to_the_api_process():
    from stack.prefect_services import background_services

    prefects_own = {service.__name__ for service in Service.enabled_services()}
    ours = {service.__name__ for service in background_services()}
    assert "Distributor" in prefects_own  # what `prefect server services start` would run
    assert prefects_own - ours == {"Distributor"} | ({"LogDistributor"} & prefects_own)
    assert {"EventPersister", "ReactiveTriggers", "TaskRunRecorder"} <= ours
