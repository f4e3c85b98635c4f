"""Calls from a request to a platform or sink, bounded by a deadline that also stops the call.

A client's own timeouts bound connecting and each read, but a server trickling a byte at a time
passes every read timeout. So the call runs on a worker thread inside Prefect's cancel scope, which
interrupts it at the deadline (between two bytecodes, so a trickled read ends at its next byte),
and the request stops waiting for it at the same moment. A slow platform cannot pile up threads.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from prefect.utilities.timeout import timeout

T = TypeVar("T")

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="upstream-call")


class DeadlinePassed(TimeoutError):
    """The call did not finish within its deadline (and was interrupted)."""


def call_with_deadline(call: Callable[[], T], seconds: float) -> T:
    """``call()`` on a worker thread; its own exceptions propagate.

    Raises:
        DeadlinePassed: ``seconds`` went by first.
    """

    def run() -> T:
        with timeout(seconds, timeout_exc_type=DeadlinePassed):
            return call()

    future = _pool.submit(run)
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        raise DeadlinePassed(f"no answer within {seconds:g} s") from None
