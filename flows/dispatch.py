"""Hand committed outbox events to the fan-out, right after their transaction commits.

Any process that writes events (the API, flows that emit ``model.registered`` or
``drift.detected``) calls ``register_event_dispatch()`` once at start-up. If handing over fails
(the Prefect server is down, the process dies), the event keeps ``dispatched_at`` null and the
``retry-due-deliveries`` sweep dispatches it later, so nothing is lost.
"""

from __future__ import annotations

import logging

from flows.fan_out import fan_out_event
from store.events import on_events_committed

log = logging.getLogger(__name__)


def dispatch_events(event_ids: list[str]) -> None:
    """Start one ``fan-out-event`` background run per event."""
    for event_id in event_ids:
        try:
            fan_out_event.delay(event_id)
        except Exception as error:  # the sweep is the safety net; the caller's commit stands
            log.warning(
                "could not dispatch event %s now (%s); the retry sweep will", event_id, type(error).__name__
            )


def register_event_dispatch() -> None:
    """Dispatch the events of every commit in this process (idempotent)."""
    on_events_committed(dispatch_events)
