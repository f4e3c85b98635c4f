"""``python -m stack.prefect_worker start --pool NAME ...``: Prefect's process worker, as ``prefect worker
start ...`` runs it, with five differences:

- **the Prefect clients it creates share one TLS context.** The worker creates a client for each poll,
  each run it submits and each cancellation check, and each builds a TLS context from the CA file
  (~30 ms of CPU) whether the API is https or not: in a py-spy profile of an idle worker, 40 % of its
  samples. ``stack.prefect_warmup.share_tls_contexts`` builds it once;
- **it loads no Prefect collection.** Prefect's worker imports every installed package of the
  ``prefect.collections`` entry point group to look its worker type up (and to list them in its
  heartbeat): here ``prefect_aws`` (boto3) and ``prefect_gcp`` (the Google Cloud SDKs, grpc, pandas,
  pyarrow), ~250 MB of a worker's ~420 MB at rest and ~2 CPU-s at its start, for a worker whose type,
  ``process``, is Prefect's own. Its flow runs, which do use those packages' blocks, import them as
  they always did;
- **it turns its Prefect settings into environment variables once.** Each run's environment starts from
  the worker's settings, which Prefect dumps again for every run (every setting validated and rendered,
  secrets included): in a py-spy profile of a worker starting small export runs, ~45 % of its samples.
  ``settings_environment_once`` keeps the dump of the settings object in force and hands each run a
  copy; a worker whose settings change (a new settings context) gets a new dump;
- **it labels a run with its name beside starting it, not before.** Prefect's worker patches the
  worker's labels onto each flow run between proposing Pending and starting the process. On SQLite,
  Prefect's server reads the run and then writes it in one transaction, which fails at once ("database
  is locked", a 503) when another write committed in between (WAL cannot upgrade a stale read), and the
  client retries after 2, 4, 8, 16 and 32 s: at 60 runs a minute, 303 of the 312 requests the server
  failed in a measured run were this one, and runs waited 20-60 s to start holding a worker slot.
  ``labels_beside_the_start`` sends the same request, with the same retries, on a task of its own;
- **it polls when there may be a run for it, not only every few seconds.** Prefect's worker learns of
  new runs by polling, and a poll costs the Prefect server a query and two background tasks of its own
  (~18 ms of CPU for the stack): at a poll every 2 s, a quarter of what an idle ``make up`` stack spent;
  at Prefect's 10 s, a triggered export waited 5 s on average. ``wake_the_worker`` subscribes to
  Prefect's event stream for ``prefect.flow-run.Scheduled`` and polls when one is for this worker's pool
  (a triggered export, a sync, a registration); and when a run ends while every slot was taken, it polls
  for the runs the last poll had to leave. So the polls go back to Prefect's 10 s: a schedule's runs are
  fetched that far ahead (``PREFECT_WORKER_PREFETCH_SECONDS``; Prefect's scheduler emits no event for
  them). With the stream down, the worker polls every 10 s only, as Prefect's worker does.

It also runs the sweep gate (``stack/sweep_gate.py``) on a thread: the sweeps' deployments run when they
have work. Everything else is Prefect's CLI, arguments and all.
"""

from __future__ import annotations

import asyncio
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from prefect.events import Event
    from prefect.workers.base import BaseWorker

SCHEDULED = "prefect.flow-run.Scheduled"
# Polls a wake-up may cause: at most one per this many seconds however many runs are scheduled at once
# (each poll fetches every run due).
WAKE_GAP_SECONDS = 0.25
# After the event stream fails or closes (Prefect restarting, or serving no stream), it is opened again
# after this long, doubled up to the cap while it keeps failing; the worker's own polls go on meanwhile.
RESUBSCRIBE_SECONDS = (1.0, 30.0)
# What wakes each running worker's extra polls (``wake_the_worker``).
_WAKE: weakref.WeakKeyDictionary[BaseWorker, asyncio.Event] = weakref.WeakKeyDictionary()


def without_collections() -> None:
    """Have Prefect find no collection to load in this process, with its own worker types registered.

    Prefect keeps what ``load_prefect_collections()`` loaded in a module global and returns it on every
    later call: seeded empty, no entry point is imported. ``tests/workers/test_prefect_worker.py`` holds
    this against the pinned Prefect.
    """
    import prefect._internal.plugins.collections as collections
    import prefect.workers.process  # noqa: F401 - registers the ``process`` worker type

    collections._collections = {}


def settings_environment_once() -> None:
    """Have each run's job configuration start from one dump of the worker's settings.

    ``BaseJobConfiguration._base_environment`` (``get_current_settings().to_environment_variables(...)``)
    depends on nothing but the settings object in force; ``tests/workers/test_prefect_worker.py`` holds
    this against the pinned Prefect.
    """
    from prefect.settings import get_current_settings
    from prefect.workers.base import BaseJobConfiguration

    dump = BaseJobConfiguration._base_environment.__func__  # type: ignore[attr-defined]
    last: dict[str, object] = {}

    def base_environment(cls: type) -> dict[str, str]:
        settings = get_current_settings()
        if last.get("settings") is not settings:  # held, so its id cannot be reused by another object
            last.update(settings=settings, environment=dump(cls))
        return dict(last["environment"])  # type: ignore[arg-type]

    BaseJobConfiguration._base_environment = classmethod(base_environment)  # type: ignore[method-assign,assignment]


def labels_beside_the_start() -> None:
    """Have the worker's labels reach each flow run from a task of their own, so that a slow or retried
    request no longer holds the run's start (and its slot); a failure is logged, not raised."""
    from prefect.workers.base import BaseWorker

    give = BaseWorker._give_worker_labels_to_flow_run

    async def give_beside(self: BaseWorker, flow_run_id: UUID) -> None:
        async def give_now() -> None:
            try:
                await give(self, flow_run_id)
            except Exception:  # noqa: BLE001 - the labels say which worker ran it; the run goes on without
                self._logger.warning("could not label flow run %s with this worker", flow_run_id, exc_info=True)

        self._runs_task_group.start_soon(give_now)  # type: ignore[union-attr]

    BaseWorker._give_worker_labels_to_flow_run = give_beside  # type: ignore[method-assign]


def wake_the_worker() -> None:
    """Have the worker poll for runs due, beside its own polls (``_poll_when_woken``), as soon as there may
    be one it can start: when a flow run of its pool is scheduled, and when one of its runs ends while
    every slot was taken (the runs its last poll had to leave are then started now, not at the next)."""
    import anyio
    from prefect.workers.base import BaseWorker

    start = BaseWorker.start
    release = BaseWorker._release_limit_slot

    async def start_awake(self: BaseWorker, *args: Any, **kwargs: Any) -> None:
        async with anyio.create_task_group() as beside:
            beside.start_soon(_poll_when_woken, self)
            try:
                await start(self, *args, **kwargs)
            finally:
                beside.cancel_scope.cancel()

    def release_and_wake(self: BaseWorker, flow_run_id: UUID) -> None:
        limiter = self._limiter
        was_full = limiter is not None and limiter.borrowed_tokens >= limiter.total_tokens
        release(self, flow_run_id)
        if was_full and (woken := _WAKE.get(self)) is not None:
            woken.set()

    BaseWorker.start = start_awake  # type: ignore[method-assign]
    BaseWorker._release_limit_slot = release_and_wake  # type: ignore[method-assign]


async def _poll_when_woken(worker: BaseWorker) -> None:
    """Poll (``get_and_submit_flow_runs``, what the worker's loop calls) each time ``worker`` is woken, at
    most every ``WAKE_GAP_SECONDS``. Never raises: a failure here must not stop the worker, whose own
    loop polls anyway. A run both polls find is submitted once (the worker skips the runs it is
    submitting, and Prefect's server lets one worker move a run to Pending)."""
    woken = _WAKE[worker] = asyncio.Event()
    listening = asyncio.create_task(_listen_for_scheduled_runs(worker, woken))
    try:
        while True:
            await woken.wait()
            woken.clear()
            if worker.is_setup:
                try:
                    await worker.get_and_submit_flow_runs()
                except Exception:  # noqa: BLE001 - the worker's own loop polls again
                    worker._logger.warning("a poll for runs due failed", exc_info=True)
            await asyncio.sleep(WAKE_GAP_SECONDS)
    finally:
        listening.cancel()
        _WAKE.pop(worker, None)


async def _listen_for_scheduled_runs(worker: BaseWorker, woken: asyncio.Event) -> None:
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    scheduled = EventFilter(  # type: ignore[call-arg]
        event=EventNameFilter(name=[SCHEDULED]),  # type: ignore[call-arg]
        resource=EventResourceFilter(id_prefix=["prefect.flow-run."]),  # type: ignore[call-arg]
    )
    first, longest = RESUBSCRIBE_SECONDS
    pause = first
    while True:
        opened = time.monotonic()
        try:
            async with get_events_subscriber(filter=scheduled, reconnection_attempts=2) as subscriber:
                async for event in subscriber:
                    if in_pool(event, worker._work_pool_name):
                        woken.set()
            why = "it was closed"
        except Exception as error:  # noqa: BLE001 - Prefect unreachable or restarting: its polls go on
            why = f"{type(error).__name__}: {error}"
        if time.monotonic() - opened > longest:  # it had been open a while: a new outage
            pause = first
        worker._logger.info("Prefect's event stream is unavailable (%s); opening it again in %g s", why, pause)
        await asyncio.sleep(pause)
        pause = min(longest, 2 * pause)


def in_pool(event: Event, pool: str) -> bool:
    """Whether ``event`` is about a flow run of the work pool named ``pool``."""
    related = event.resource_in_role.get("work-pool")
    return related is not None and related.get("prefect.resource.name") == pool


def main() -> None:
    from stack.prefect_warmup import share_tls_contexts
    from stack.sweep_gate import start_sweep_gate
    from store.settings import get_settings

    without_collections()
    share_tls_contexts()
    settings_environment_once()
    labels_beside_the_start()
    wake_the_worker()
    check_every = get_settings().sweep_check_seconds
    if check_every > 0:
        start_sweep_gate(check_every)
    from prefect.cli import app

    sys.argv = [sys.argv[0], "worker", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
