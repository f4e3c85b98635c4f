"""Hand committed outbox events to the fan-out, right after their transaction commits.

Any process that writes events (the API, flows that emit ``model.registered`` or
``drift.detected``) calls ``register_event_dispatch()`` once at start-up. The commit only queues
the event ids; a few threads of this process make the ``fan-out-event`` background runs, so a
request does not wait for the Prefect API. If handing over fails (the Prefect server is down, the
process dies first), the event keeps ``dispatched_at`` null and the ``retry-due-deliveries`` sweep
dispatches it later, so nothing is lost.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from flows.fan_out import fan_out_event
from store.events import on_events_committed

log = logging.getLogger(__name__)

# Creating a background run is one Prefect API round trip; a few in parallel keep up with bursts.
DISPATCH_THREADS = 4

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def dispatch_event(event_id: str) -> None:
    """Start one ``fan-out-event`` background run for the event (now, in this thread)."""
    try:
        fan_out_event.delay(event_id)
    except Exception as error:  # noqa: BLE001 - whatever failed, the sweep is the safety net
        log.warning("could not dispatch event %s now (%s); the retry sweep will", event_id, type(error).__name__)


def dispatch_events(event_ids: list[str]) -> None:
    """Queue the events for dispatch and return at once (called right after a commit)."""
    pool = _dispatch_pool()
    for event_id in event_ids:
        pool.submit(dispatch_event, event_id)


def _dispatch_pool() -> ThreadPoolExecutor:
    # One pool per process: gunicorn forks workers after the app is built, and threads do not
    # survive a fork, so a pool made before the fork is replaced in the child.
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(DISPATCH_THREADS, thread_name_prefix="event-dispatch"))
        return _pool[1]


def register_event_dispatch() -> None:
    """Dispatch the events of every commit in this process (idempotent)."""
    on_events_committed(dispatch_events)
