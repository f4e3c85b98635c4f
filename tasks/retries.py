"""When a failed Prefect task is worth another attempt.

A task's ``retries`` are for what may pass (a dropped connection, a 503, throttling); an answer that
says the call itself is wrong (rejected credentials, a 403, a missing model) will be the same on
every attempt, and retrying it only delays the failure by the whole backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


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
