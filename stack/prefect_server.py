"""``python -m stack.prefect_server start ...``: Prefect's server, as ``prefect server start`` runs it, with
one difference: **its background-task worker asks Redis for work every second, not four times a second.**

Prefect's server runs its background tasks and perpetual services through a Docket worker (in the
server process; on the PostgreSQL + Redis shape also in Prefect's services process,
``stack/prefect_services.py``, which calls ``quiet_docket_worker`` too). Docket's defaults have it block
on its stream for 250 ms at a time and move scheduled tasks that fell due every 250 ms: ~8 Redis calls
a second per worker whether or not there is work. At rest on the PostgreSQL + Redis shape that was most
of what the Prefect server process did, and a good part of Prefect's services process and of Redis.

At one second, a task added now still starts at once (the blocking read returns when it arrives); a
task scheduled for later (a perpetual service's next round, every 5-60 s) starts up to a second after
its time instead of 250 ms; a worker whose 10 task slots are all taken looks for a free one every second.

Everything else is Prefect's CLI, arguments and all.
"""

from __future__ import annotations

import functools
import sys
from datetime import timedelta

# How often Prefect's Docket worker blocks on its stream, and moves scheduled tasks due to it.
DOCKET_CHECK_SECONDS = 1.0


def quiet_docket_worker(seconds: float = DOCKET_CHECK_SECONDS) -> None:
    """Have the Docket worker Prefect's server starts (``background_worker``) wait up to ``seconds`` on
    its stream, and move scheduled tasks every ``seconds``."""
    from docket import Worker
    from prefect.server.api import background_workers

    every = timedelta(seconds=seconds)
    background_workers.Worker = functools.partial(Worker, minimum_check_interval=every, scheduling_resolution=every)


def main() -> None:
    quiet_docket_worker()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "server", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
