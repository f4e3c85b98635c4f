"""Prefect's background services in their own process, watched: ``python -m stack.prefect_services``.

What ``prefect server services start`` runs (every enabled loop service and Docket's perpetual
services), with three differences: when one service stops by itself, the process says which and why and
exits with status 1, so ``up`` (or systemd, or Kubernetes) starts it again; its Docket worker asks
Redis for work every second, not four times a second (``stack/prefect_server.py``); and it leaves out
the services that serve a web server's websockets (``background_services``).

Why: Prefect (3.9) starts each service as an asyncio task and never looks at it again. Its task-run
recorder, for one, re-raises a ``CancelledError`` from a failed flush (a database connection failure,
as asyncpg may surface it) through its Redis consumer, whose loop catches only ``Exception``: the
consumer task ends, the recorder's ``start()`` returns, and the process runs on without it. No task
run (a fan-out, a ship-page) would be recorded again until someone restarted the process by hand.

The combined server (``python -m stack.prefect_server start``: the single-machine stack, no Redis) keeps
Prefect's own runner.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from prefect.logging import get_logger

if TYPE_CHECKING:
    from prefect.server.services.base import Service

log = get_logger("prefect-services")

# How long the services have to end once asked to stop, before they are cancelled.
STOP_GRACE_SECONDS = 10.0


async def run_services(stop: asyncio.Event) -> str | None:
    """Run every enabled service, and Docket's perpetual ones, until ``stop`` is set (``None``) or one
    of the services ends (its name)."""
    from docket import Docket
    from prefect.server.api.background_workers import background_worker
    from prefect.settings.context import get_current_settings

    from stack.prefect_server import quiet_docket_worker

    quiet_docket_worker()
    docket_url = get_current_settings().server.docket.url
    async with (
        Docket(name="prefect", url=docket_url, execution_ttl=timedelta(0)) as docket,
        background_worker(docket, ephemeral=False, webserver_only=False),
    ):
        return await watch_services([service_class() for service_class in background_services()], stop)


def background_services() -> list[type[Service]]:
    """The enabled services, but for those that serve a web server's clients (the event and log
    distributors behind its ``/events/out`` and ``/logs/out`` websockets): the Prefect API's process runs
    those. Here they would read every event off Redis for no subscriber (Prefect's own ``services
    start`` runs them too)."""
    from prefect.server.services.base import RunInWebservers, Service

    return [service for service in Service.enabled_services() if not issubclass(service, RunInWebservers)]


async def watch_services(services: list[Service], stop: asyncio.Event) -> str | None:
    """Start ``services``; when ``stop`` is set or one of them ends, stop them all. The one that ended
    by itself is logged and named; ``None`` when ``stop`` ended it."""
    running = {asyncio.create_task(service.start(), name=service.name): service for service in services}
    stopping = asyncio.create_task(stop.wait(), name="stop")
    log.info("running %d Prefect services: %s", len(services), ", ".join(s.name for s in services))
    done, _ = await asyncio.wait([*running, stopping], return_when=asyncio.FIRST_COMPLETED)
    ended = next((task for task in done if task is not stopping), None)
    if ended is not None:
        _report(ended)
    stopping.cancel()
    await asyncio.gather(*(service.stop() for service in services), return_exceptions=True)
    _, left = await asyncio.wait(running, timeout=STOP_GRACE_SECONDS)
    for task in left:  # a service whose stop() did not end its start()
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    return ended.get_name() if ended is not None else None


def _report(ended: asyncio.Task[object]) -> None:
    if ended.cancelled():
        how = "was cancelled"
    elif (error := ended.exception()) is not None:
        how = f"failed ({type(error).__name__}: {error})"
    else:
        how = "returned"
    log.error(
        "the Prefect service %s stopped by itself (%s); exiting so that it is started again", ended.get_name(), how
    )


async def _main() -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ended = await run_services(stop)
    return 1 if ended else 0


def main() -> None:
    from prefect.logging.configuration import setup_logging

    setup_logging()  # as Prefect's CLI does: its console handler, at PREFECT_LOGGING_LEVEL
    sys.exit(asyncio.run(_main()))


if __name__ == "__main__":
    main()
