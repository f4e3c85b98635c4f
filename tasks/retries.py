"""When a failed Prefect task is worth another attempt, and retries of our own database steps.

A task's ``retries`` are for what may pass (a dropped connection, a 503, throttling); an answer that
says the call itself is wrong (rejected credentials, a 403, a missing model) will be the same on
every attempt, and retrying it only delays the failure by the whole backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def retry_unless(*final: type[BaseException]) -> Callable[[Any, Any, Any], bool]:
    """A ``retry_condition_fn`` that retries every failure except those of the ``final`` types."""

    def should_retry(_task: Any, _task_run: Any, state: Any) -> bool:
        try:
            state.result(raise_on_failure=True)
        except final:
            return False
        except Exception:
            return True
        return True

    return should_retry


def database_retries(attempts: int = 3, delay_seconds: float = 1.0) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry a step of our own database work on a dropped or refused connection (a PostgreSQL restart,
    a failover), ``attempts`` times in all, ``delay_seconds`` apart.

    For the bookkeeping of a run (open it, read a watermark, record a page, close it): as a Prefect task
    each would cost the run a task run, its state changes and their events on the Prefect server, many
    times the step's own work. Any other error is the step's answer and is raised at once.
    """

    def decorate(step: Callable[P, R]) -> Callable[P, R]:
        @wraps(step)
        def retried(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return step(*args, **kwargs)
                except (OperationalError, InterfaceError) as error:
                    if attempt == attempts:
                        raise
                    log.warning("%s: database unavailable (%s); again in %g s", step.__name__,
                                type(error.orig or error).__name__, delay_seconds)
                    time.sleep(delay_seconds)
            raise AssertionError("unreachable")

        return retried

    return decorate
