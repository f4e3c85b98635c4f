"""The types every sink shares: what it ships to, what it reports back, what it raises."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from store.export_runs import Rejection
from store.settings import get_settings

if TYPE_CHECKING:
    from store.models import Export

# Answers that mean "busy, try again": a sink re-sends what got them, with backoff.
BUSY_STATUSES = frozenset({429, 500, 502, 503, 504})


class SinkError(Exception):
    """Base class of every error a sink raises on purpose."""


class CredentialsRejected(SinkError):
    """The sink refused the export's credentials; retrying cannot help."""


class SinkMisconfigured(SinkError):
    """The export's settings are wrong for this sink (unknown index, bad channel, ...)."""


class SinkUnavailable(SinkError):
    """The sink stayed busy or unreachable through the sink's own retries."""


@dataclass(frozen=True)
class ExportTarget:
    """The non-secret half of an export: where its documents go and how they are labelled."""

    export_id: str
    organization_id: str
    project_id: str | None
    config: dict[str, Any]

    @classmethod
    def of(cls, export: Export) -> ExportTarget:
        """The target of a stored export (its config copied, so the row stays untouched)."""
        return cls(export.id, export.organization_id, export.project_id, dict(export.config))


@dataclass
class ShipResult:
    """What happened to one page: acknowledged, refused for good, and re-sent record attempts."""

    shipped: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    retried: int = 0


@dataclass(frozen=True)
class Check:
    """One line of a connection test (``reachable``, ``credentials``, ...)."""

    name: str
    ok: bool
    detail: str


# How long a connection test may take (``/test``, and the template install on create and update);
# the app config ``SINK_CHECK_DEADLINE_SECONDS`` overrides it.
CHECK_DEADLINE_SECONDS = 25.0


def request_timeout() -> float:
    """Seconds a sink has to accept a connection and to deliver each read of an answer
    (``MODELPULSE_SINK_TIMEOUT_SECONDS``); a whole page is bounded by ``page_deadline()``."""
    return get_settings().sink_timeout_seconds


def page_deadline() -> float:
    """Seconds one attempt at shipping a page may take (``MODELPULSE_SINK_PAGE_DEADLINE_SECONDS``)."""
    return get_settings().sink_page_deadline_seconds


def confirmation_seconds(sink: ModuleType, target: ExportTarget) -> float:
    """How long a page may wait, beyond ``page_deadline()``, for the sink to confirm it (Splunk's
    indexer acknowledgements): the sink module's optional ``longest_page_seconds(target)``."""
    longest = getattr(sink, "longest_page_seconds", None)
    return longest(target) if longest is not None else 0.0


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter for the ``attempt``-th retry (0-based)."""
    return random.uniform(0, min(cap, base * 2**attempt))


def pause(seconds: float) -> None:
    """Sleep between retries (one place, so the retry loops read plainly)."""
    if seconds > 0:
        time.sleep(seconds)
