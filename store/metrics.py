"""ModelPulse's Prometheus metrics: what each process counts, in one place.

Every process kind records into the objects below (``prometheus-client``). Under ``up`` each process
writes them to files in the machine's metrics directory (``PROMETHEUS_MULTIPROC_DIR``, set by the
supervisor, which owns and empties it), so the API's ``GET /metrics`` serves the sum over the
machine's API workers, dispatchers, workers and flow runs (``store.metrics_exposition``). Without
that directory (tests, a bare ``flask run``) each process counts for itself.

Gauges of shared state (pending work, lag) are not here: they are read from the database at
scrape time (``store.metric_gauges``), and so are the same whichever process is scraped.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PREFIX = "modelpulse_"

# Webhook latency goals are p50 < 250 ms and p99 < 1 s: buckets around them, then the retry range.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_ACCEPTED = Counter(
    "modelpulse_events_accepted",
    "Events accepted into the outbox (pushed, reported or emitted by a flow).",
    ["organization", "type"],
)
WEBHOOK_ATTEMPTS = Counter(
    "modelpulse_webhook_attempts",
    "Webhook delivery attempts by outcome (delivered, failed, retry, timeout, refused, gone).",
    ["organization", "outcome"],
)
WEBHOOK_EVENT_TO_ATTEMPT = Histogram(
    "modelpulse_webhook_event_to_attempt_seconds",
    "From an event's acceptance to the first attempt of each of its deliveries.",
    buckets=LATENCY_BUCKETS,
)
EXPORT_RECORDS = Counter(
    "modelpulse_export_records",
    "Records an export run handed to its sink: shipped (accepted) or rejected (refused by the sink).",
    ["organization", "export_id", "stream", "outcome"],
)
EXPORT_RUNS = Counter(
    "modelpulse_export_runs",
    "Export runs that ended, by outcome (succeeded, partial, failed).",
    ["outcome"],
)
REGISTRY_SYNCS = Counter(
    "modelpulse_registry_syncs",
    "Registry syncs that ended, by registry type and outcome (succeeded, failed).",
    ["type", "outcome"],
)
HTTP_REQUESTS = Counter(
    "modelpulse_http_requests",
    "API requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "modelpulse_http_request_seconds",
    "API request duration by method and route template.",
    ["method", "route"],
    buckets=REQUEST_BUCKETS,
)

# Every name a scrape can show, with its type and labels (a histogram also serves ``_bucket`` with ``le``,
# ``_sum`` and ``_count``): the dashboards' and alert rules' references are
# checked against this (tests/test_dashboards.py), so a renamed metric fails there, not in Grafana.
SERVED: dict[str, tuple[str, tuple[str, ...]]] = {
    "modelpulse_events_accepted_total": ("counter", ("organization", "type")),
    "modelpulse_webhook_attempts_total": ("counter", ("organization", "outcome")),
    "modelpulse_webhook_event_to_attempt_seconds": ("histogram", ()),
    "modelpulse_outbox_pending": ("gauge", ()),
    "modelpulse_webhook_deliveries_pending": ("gauge", ()),
    "modelpulse_webhook_oldest_pending_seconds": ("gauge", ()),
    "modelpulse_export_records_total": ("counter", ("organization", "export_id", "stream", "outcome")),
    "modelpulse_export_lag_seconds": ("gauge", ("organization", "export_id", "stream")),
    "modelpulse_export_runs_total": ("counter", ("outcome",)),
    "modelpulse_registry_syncs_total": ("counter", ("type", "outcome")),
    "modelpulse_http_requests_total": ("counter", ("method", "route", "status")),
    "modelpulse_http_request_seconds": ("histogram", ("method", "route")),
}
