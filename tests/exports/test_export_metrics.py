"""An export's metrics, scraped from ``GET /metrics``: lag (age of the oldest record not shipped) rises
while the sink refuses and returns to 0 once a run ships everything; records and runs counted by outcome."""

from __future__ import annotations

import time

import pytest

from flows.export import export
from tests.exports import seed
from tests.support.metrics import Samples, samples_of, value


def scrape(api) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.data
    return samples_of(response.get_data(as_text=True))



def test_lag_rises_while_the_sink_refuses_and_returns_to_zero_after(api, org_id, hec):
    seed.inference_logs(org_id, 7)
    seed.drift_metrics(org_id, 2)
    export_id = seed.export(
        org_id, "splunk", {"hec_url": hec.url, "index": "mlops", "page_size": 5}, {"hec_token": hec.token},
        streams=("inference_logs", "drift_metrics"),
    )
    oldest = seed.BASE_TIME.timestamp()  # the first inference log's time
    labels = {"organization": org_id, "export_id": export_id}
    before = scrape(api)
    lag = value(before, "modelpulse_export_lag_seconds", **labels, stream="inference_logs")
    assert time.time() - oldest - 5 < lag <= time.time() - oldest
    assert value(before, "modelpulse_export_lag_seconds", **labels, stream="drift_metrics") > 0
    assert ("modelpulse_export_lag_seconds", tuple(sorted((labels | {"stream": "events"}).items()))) not in before

    hec.disable_token()
    with pytest.raises(Exception, match="rejected the token"):
        export(export_id)
    down = scrape(api)
    assert value(down, "modelpulse_export_lag_seconds", **labels, stream="inference_logs") >= lag
    assert value(down, "modelpulse_export_runs_total", outcome="failed") == value(
        before, "modelpulse_export_runs_total", outcome="failed"
    ) + 1

    hec.token_disabled = False
    seed.inference_logs(org_id, 3, start=7)
    hec.invalid(seed.record_ids(org_id)[-1])  # the last one is refused, and kept as rejected
    assert export(export_id)["status"] == "completed_with_errors"
    after = scrape(api)
    assert value(after, "modelpulse_export_lag_seconds", **labels, stream="inference_logs") == 0
    assert value(after, "modelpulse_export_lag_seconds", **labels, stream="drift_metrics") == 0
    shipped = {"organization": org_id, "export_id": export_id, "stream": "inference_logs", "outcome": "shipped"}
    assert value(after, "modelpulse_export_records_total", **shipped) == 9
    assert value(after, "modelpulse_export_records_total", **shipped | {"outcome": "rejected"}) == 1
    assert value(after, "modelpulse_export_records_total", **shipped | {"stream": "drift_metrics"}) == 2
    assert value(after, "modelpulse_export_runs_total", outcome="completed_with_errors") == value(
        before, "modelpulse_export_runs_total", outcome="completed_with_errors"
    ) + 1
