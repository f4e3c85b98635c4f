"""``GET /metrics``: the Prometheus exposition of this machine's ModelPulse processes, and the API's own
request metrics (every request, by route template, recorded by hooks this blueprint installs).

Outside ``/organizations``: no API key, no rate limit. When ``MODELPULSE_METRICS_TOKEN`` is set a
scrape must send it as a bearer token.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from api.endpoint import endpoint
from api.errors import Unauthorized
from store.metric_gauges import DatabaseGauges
from store.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, exposition
from store.settings import get_settings

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@endpoint(public=True, problems=(401,))
def metrics():
    """Prometheus metrics of every ModelPulse process on this machine.

    Counters and histograms are summed over this machine's API workers, dispatchers, workers and flow
    runs; the gauges of pending work and export lag are read from the database. Text exposition format
    0.0.4. Needs `Authorization: Bearer <MODELPULSE_METRICS_TOKEN>` when that setting is set.
    """
    token = get_settings().metrics_token
    if token is not None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            raise Unauthorized("A scrape of /metrics needs the metrics token as a bearer token.")
    body = exposition(DatabaseGauges(current_app.config["DATABASE_URL"]))
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4)  # what Prometheus 2 and 3 both scrape


@bp.before_app_request
def _start_timer() -> None:
    g.request_started = time.perf_counter()


@bp.after_app_request
def _count_request(response: Response) -> Response:
    started = g.pop("request_started", None)
    # The rule, never the path: `/organizations/<organization_id>/webhooks`, one series however many ids.
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    if started is not None:
        HTTP_REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
    return response
