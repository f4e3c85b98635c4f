"""Waiting for something to happen, in tests and benches: one way to poll.

Example:
    ```python
    from tests.support.polling import wait_until

    deliveries = wait_until(lambda: receiver.deliveries(), 30, "a delivery")
    ```
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 60.0, what: str = "condition", every: float = 0.05) -> T:
    """Call ``condition()`` every ``every`` seconds until it returns something truthy, and return that.

    A bound on waiting, not a timing assertion: ``condition`` is called once more at the deadline.
    To wait for a value that must pass a test, return it from the condition: ``lambda: ok(v := read()) and v``.

    Raises:
        AssertionError: ``condition()`` was still falsy after ``timeout`` seconds (the message names ``what``).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(every)
