"""The export flow against the Splunk HEC and Datadog fakes (in process)."""

from __future__ import annotations

import pytest

from flows.export import export
from tests.exports import seed


def splunk_export(org_id, hec, token="hec-secret-token-91bd"):
    return seed.export(
        org_id, "splunk", {"hec_url": hec.url, "index": "mlops", "page_size": 10, "concurrency": 1}, {"hec_token": token}
    )


def datadog_export(org_id, datadog, api_key="dd-secret-api-key-c0ffee"):
    return seed.export(
        org_id, "datadog", {"site": "datadoghq.eu", "api_url": datadog.url}, {"api_key": api_key, "app_key": "app"}
    )


def test_splunk_events_carry_time_sourcetype_index_and_ids(org_id, hec):
    seed.inference_logs(org_id, 12)
    seed.drift_metrics(org_id, 2)
    seed.events(org_id, ["threshold.breached"])
    hec.busy(1)

    summary = export(splunk_export(org_id, hec))

    assert summary["status"] == "completed"
    assert summary["streams"]["inference_logs"]["shipped"] == 12
    assert summary["streams"]["inference_logs"]["retried"] == 10, "the busy batch (one page) was re-sent"
    assert len(hec.ids()) == len(set(hec.ids())) == 15
    by_type = {e["sourcetype"] for e in hec.events}
    assert by_type == {"modelpulse:inference", "modelpulse:drift", "modelpulse:event"}
    # Pages ship concurrently, so the busy first page may arrive after the second.
    first = min(hec.events, key=lambda e: e["time"])
    assert first["index"] == "mlops" and first["time"] == 1793491200.0
    assert first["fields"]["modelpulse.id"] == first["event"]["id"]


def test_splunk_invalid_event_is_rejected_and_the_rest_of_the_batch_shipped(org_id, hec):
    seed.inference_logs(org_id, 10)
    export_id = splunk_export(org_id, hec)
    ids = seed.record_ids(org_id)
    hec.invalid(ids[4])

    summary = export(export_id)

    assert summary["streams"]["inference_logs"] == {"shipped": 9, "rejected": 1, "retried": 0}
    assert set(hec.ids()) == set(ids) - {ids[4]}
    (rejected,) = seed.rejected(summary["run_id"])
    assert rejected.record_id == ids[4] and "code 6" in rejected.reason


def test_datadog_logs_series_and_events(org_id, datadog):
    seed.inference_logs(org_id, 3)
    seed.drift_metrics(org_id, 2)
    event_ids = seed.events(org_id, ["drift.detected", "model.registered"])
    datadog.rate_limit(1, reset=1)

    summary = export(datadog_export(org_id, datadog))

    assert summary["status"] == "completed"
    assert summary["streams"]["inference_logs"] == {"shipped": 3, "rejected": 0, "retried": 3}
    assert datadog.rate_limited == 1
    assert [log["modelpulse"]["id"] for log in datadog.logs[:3]] == seed.record_ids(org_id), "once each, in order"
    assert {log["modelpulse"]["id"] for log in datadog.logs} >= {event_ids[1]}
    assert all(log["service"] == "churn" and "model:churn" in log["ddtags"] for log in datadog.logs)
    assert {s["metric"] for s in datadog.series} == {"modelpulse.drift.psi"}
    assert {"feature:age", "model:churn", "model_version:3", f"organization:{org_id}"} <= set(datadog.series[0]["tags"])
    (event,) = datadog.events
    assert f"modelpulse.id:{event_ids[0]}" in event["tags"] and event["alert_type"] == "warning"


@pytest.mark.parametrize(
    ("sink", "make_export", "message"),
    [
        ("hec", lambda org_id, fake: splunk_export(org_id, fake, token="wrong-token"),
         "Splunk HEC rejected the token (code 4"),
        ("datadog", lambda org_id, fake: datadog_export(org_id, fake, api_key="revoked"),
         "Datadog rejected the API key (403 Forbidden): check the export's api_key"),
    ],
)
def test_refused_credentials_fail_the_run_at_once_saying_so(request, org_id, sink, make_export, message):
    fake = request.getfixturevalue(sink)
    seed.inference_logs(org_id, 5)
    export_id = make_export(org_id, fake)

    with pytest.raises(Exception, match="rejected the"):
        export(export_id)

    assert len(fake.requests) == 1, "no retry once the credentials were refused"
    run = seed.only_run(export_id)
    assert run.status == "failed" and message in run.error
    assert seed.watermark(export_id) is None
