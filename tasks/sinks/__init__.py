"""Sinks: one module per external system, each exposing the same small interface.

Every sink module defines:

- ``ship_page(connection, target, stream, records) -> ShipResult``: send one page of records,
  retrying what the sink asks to retry; records it refuses for good come back as rejections.
- ``check_connection(connection, target) -> list[Check]``: reachability, credentials and the
  export's settings, for ``/test``.
- optionally ``prepare_target(connection, target)``: install what the export's settings name on the
  sink (Elasticsearch index templates and ILM policy), after create and update;
- optionally ``longest_page_seconds(target) -> float``: how long a page may wait for the sink to
  confirm it, on top of the page deadline (Splunk's indexer acknowledgements).

Adding a sink is one module here plus one block in ``blocks/``. Exceptions a sink raises::

    SinkError
     ├── CredentialsRejected   the sink refused our credentials: fail the run at once, no retry
     ├── SinkMisconfigured     the export's settings are wrong (e.g. unknown index): no retry
     └── SinkUnavailable       still busy/down after the sink's own retries: the task retries
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tasks.sinks.base import (
    CHECK_DEADLINE_SECONDS,
    Check,
    CredentialsRejected,
    ExportTarget,
    ShipResult,
    SinkError,
    SinkMisconfigured,
    SinkUnavailable,
)

SINK_TYPES = ("elasticsearch", "splunk", "datadog")


def sink_module(export_type: str) -> ModuleType:
    """The sink module for an export type, e.g. ``tasks.sinks.elasticsearch``."""
    if export_type not in SINK_TYPES:
        raise ValueError(f"unknown export type {export_type!r}")
    return importlib.import_module(f"tasks.sinks.{export_type}")


__all__ = [
    "CHECK_DEADLINE_SECONDS",
    "Check",
    "CredentialsRejected",
    "ExportTarget",
    "SINK_TYPES",
    "ShipResult",
    "SinkError",
    "SinkMisconfigured",
    "SinkUnavailable",
    "sink_module",
]
