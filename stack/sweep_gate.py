"""The sweep gate: a sweep's deployment runs when the sweep has work, not every minute whatever it has.

The three sweeps (``retry-due-deliveries``, ``registry-sync``, ``run-monitors``) ran on one-minute
Prefect schedules: three flow runs a minute at ~0.75 CPU-s each over the stack, on an idle stack with
nothing to do 0.037 of its 0.09 cores (``bench/RESULTS.md``, "What is left, and why"). Every worker
process ``up`` starts (``stack/prefect_worker.py``) runs this gate on a thread of its own: every
``MODELPULSE_SWEEP_CHECK_SECONDS`` it asks each sweep's check (``flows/due_sweeps.py``: a few indexed
reads, the selections the sweep itself makes) and, when one finds work, creates a flow run of the
sweep's deployment with the idempotency key ``sweep-gate/<deployment>/<UTC minute>``. However many workers on however
many machines find a sweep due, Prefect's database keeps one such run per sweep and minute: never more
runs than the old schedules made. Each deployment keeps a Prefect schedule (every 10 minutes) as the
backstop: a worker started without this gate, a check that fails.

It lives beside the workers, not in a dispatcher: the retry sweep is what fans events out when no
dispatcher runs, and a sweep needs a worker to run at all.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.logging import get_logger

from store.db import session_scope
from store.models import utcnow

if TYPE_CHECKING:
    from flows.due_sweeps import SweepCheck

logger = get_logger("sweep-gate")


class SweepGate:
    """Checks each sweep and starts the due ones; ``check`` is one round (what the thread repeats)."""

    def __init__(self, checks: Sequence[SweepCheck] | None = None, database_url: str | None = None) -> None:
        if checks is None:
            from flows.due_sweeps import CHECKS as checks
        self.checks = tuple(checks)
        self.database_url = database_url
        self._started_in: dict[str, str] = {}  # sweep -> the minute this gate last started it in
        self._checked_at: dict[SweepCheck, datetime] = {}
        self._failing: set[str] = set()

    def check(self, now: datetime | None = None) -> dict[str, UUID]:
        """Check every sweep not started this minute yet; start the due ones. Returns their runs' ids."""
        now = now or utcnow()
        minute = now.strftime("%Y-%m-%dT%H:%M")
        started = {}
        for check in self.checks:
            name = check.sweep
            if self._started_in.get(name) == minute:
                continue  # one run a minute; the next round after it is soon enough
            last = self._checked_at.get(check)
            if check.every is not None and last is not None and (now - last).total_seconds() < check.every:
                continue
            self._checked_at[check] = now
            try:
                with session_scope(self.database_url) as session:
                    reason = check.finds(session, now)
                run_id = self._start(name, minute, reason) if reason else None
                if run_id is not None:
                    started[name] = run_id
                    self._started_in[name] = minute
            except Exception as error:  # noqa: BLE001 - the database or Prefect is down: the next round tries again
                if name not in self._failing:
                    logger.warning("cannot check or start %s (checking again every round): %s: %s",
                                   name, type(error).__name__, error)
                self._failing.add(name)
                continue
            if name in self._failing:
                logger.info("checking %s again", name)
                self._failing.discard(name)
        return started

    def _start(self, name: str, minute: str, reason: str) -> UUID | None:
        """A run of the sweep's deployment for this minute (the one another gate made, if it did); ``None``
        while an operator has the deployment paused (in the UI: pausing a sweep stops it, as it stopped
        its schedule)."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(name)
            if deployment.paused:
                return None
            # Prefect keys runs per flow: the deployment's name in the key keeps two deployments of one flow
            # (a sweep deployed to a second work pool) from sharing a run.
            run = client.create_flow_run_from_deployment(deployment.id, idempotency_key=f"sweep-gate/{name}/{minute}")
        logger.info("%s has work (%s): flow run %s", name, reason, run.name)
        return run.id

    def run(self, every: float, stop: threading.Event) -> None:
        """Check every ``every`` seconds until ``stop`` is set."""
        while not stop.wait(every):
            self.check()


def start_sweep_gate(every: float) -> threading.Event:
    """Run the gate on a daemon thread of this process; set the returned event to stop it."""
    stop = threading.Event()

    def run() -> None:
        try:
            gate = SweepGate()
        except Exception:  # noqa: BLE001 - the worker carries on; the sweeps' schedules are the backstop
            logger.exception("the sweep gate did not start; sweeps run on their Prefect schedules alone")
            return
        gate.run(every, stop)

    threading.Thread(target=run, name="sweep-gate", daemon=True).start()
    return stop
