"""Datadog exports send gzip bodies within Datadog's documented limits, against a fake that checks
encodings and limits the way the intake does (tests/fakes/datadog.py)."""

from __future__ import annotations

import gzip
import json
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from datadog_api_client.model_utils import data_to_dict
from datadog_api_client.v1.model.event_alert_type import EventAlertType
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_series import MetricSeries
from sqlalchemy import insert

from flows.export import export
from store.db import session_scope
from store.export_streams import PageQuery, read_page
from store.models import DriftMetric, InferenceLog
from tasks.sinks.encoding import dumps, loads
from tasks.sinks.records import model_labels, modelpulse_fields, time_epoch, time_iso
from tests.exports import seed
from tests.fakes.datadog import EVENTS, LOGS, SERIES

API_KEY = "dd-secret-api-key-c0ffee"


def datadog_export(org_id: str, datadog, page_size: int = 5000, api_key: str = API_KEY, **streams) -> str:
    return seed.export(
        org_id,
        "datadog",
        {"site": "datadoghq.eu", "api_url": datadog.url, "page_size": page_size},
        {"api_key": api_key, "app_key": "app"},
        **streams,
    )


def records(org_id: str, stream: str) -> list[dict[str, Any]]:
    """The stream's records as plain JSON values (the client's models cannot hold JSON fragments)."""
    with session_scope() as session:
        return [loads(dumps(record)) for record in read_page(session, PageQuery(stream, org_id), 100_000)]


def big_inference_logs(org_id: str, sizes: list[int]) -> None:
    """One inference log per size, its features holding a random text of that many characters."""
    rows = [
        {
            "organization_id": org_id,
            "project_id": None,
            "model": "churn",
            "model_version": "3",
            "timestamp": seed.BASE_TIME + timedelta(minutes=i),
            "request_id": f"req-{i}",
            "features": {"blob": secrets.token_urlsafe(size)[:size]},
            "prediction": {"churn": 0.25},
            "label": None,
            "latency_ms": 12.5,
        }
        for i, size in enumerate(sizes)
    ]
    with session_scope() as session:
        session.execute(insert(InferenceLog), rows)


def varied_drift_metrics(org_id: str, count: int) -> None:
    """Drift metrics whose features have random 200-character names: series that compress poorly."""
    rows = []
    for i in range(count):
        at = seed.BASE_TIME + timedelta(minutes=i)
        rows.append(
            {
                "organization_id": org_id,
                "model": "churn",
                "model_version": "3",
                "feature": secrets.token_urlsafe(150)[:200],
                "method": "psi",
                "value": 0.001 * i,
                "threshold": 0.2,
                "drifted": False,
                "reference_from": at - timedelta(days=7),
                "reference_to": at - timedelta(days=1),
                "current_from": at - timedelta(days=1),
                "current_to": at,
                "computed_at": at,
            }
        )
    with session_scope() as session:
        session.execute(insert(DriftMetric), rows)


def as_client_models_sent_them(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """The document the sink sent before it built bytes itself: the official client's models,
    serialised by the client."""
    labels = model_labels(stream, record)
    tags = [f"{key}:{value}" for key, value in labels.items()]
    if stream == "drift_metrics":
        model = MetricSeries(
            metric=f"modelpulse.drift.{record['method']}",
            type=MetricIntakeType.GAUGE,
            points=[MetricPoint(timestamp=int(time_epoch(stream, record)), value=float(record["value"]))],
            tags=tags,
        )
    elif stream == "events" and record["type"] == "drift.detected":
        data = record["data"]
        model = EventCreateRequest(
            title=f"ModelPulse {record['type']}: {data['model']} {data['metric']}",
            text=json.dumps(data, separators=(",", ":")),
            aggregation_key=record["record_id"],
            alert_type=EventAlertType.WARNING,
            date_happened=int(time_epoch(stream, record)),
            source_type_name="modelpulse",
            tags=[*tags, f"modelpulse.id:{record['record_id']}"],
        )
    else:
        fields = modelpulse_fields(stream, record)
        model = HTTPLogItem(
            message=json.dumps(fields, separators=(",", ":"), default=str),
            ddsource="modelpulse",
            ddtags=",".join(tags),
            hostname="modelpulse",
            service=labels.get("model", "modelpulse"),
            date=time_iso(stream, record),
            modelpulse=fields,
        )
    return comparable(json.loads(json.dumps(data_to_dict(model), default=str)))


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """JSON text fields (a log's message, an event's text) parsed, so key order and spacing do not count."""
    return {key: json.loads(value) if key in ("message", "text") else value for key, value in document.items()}


def test_every_intake_request_is_gzip_and_carries_the_documents_the_client_models_did(org_id, datadog):
    seed.inference_logs(org_id, 7)
    seed.drift_metrics(org_id, 3)
    seed.events(org_id, ["drift.detected", "model.registered"])

    summary = export(datadog_export(org_id, datadog))

    assert summary["status"] == "completed"
    assert {(r.path, r.encoding, r.status) for r in datadog.intake} == {
        (LOGS, "gzip", 202), (SERIES, "gzip", 202), (EVENTS, "identity", 202),
    }, "logs and series gzip; events plain JSON (no Content-Encoding documented for v1 events)"
    assert all(r.sent_bytes < r.decompressed_bytes for r in datadog.intake if r.encoding == "gzip")
    logs = records(org_id, "inference_logs")
    drift = records(org_id, "drift_metrics")
    registered, detected = sorted(records(org_id, "events"), key=lambda r: r["type"] != "model.registered")
    assert [comparable(log) for log in datadog.logs] == [
        as_client_models_sent_them("inference_logs", r) for r in logs
    ] + [as_client_models_sent_them("events", registered)]
    assert datadog.series == [as_client_models_sent_them("drift_metrics", r) for r in drift]
    assert [comparable(event) for event in datadog.events] == [as_client_models_sent_them("events", detected)]


def test_a_page_over_5_mb_of_logs_goes_in_several_requests_and_every_log_arrives(org_id, datadog):
    big_inference_logs(org_id, [30_000] * 100)  # ~60 kB an entry (fields as message and attribute)
    export_id = datadog_export(org_id, datadog, page_size=100, streams=("inference_logs",))

    summary = export(export_id)

    assert summary["streams"]["inference_logs"] == {"shipped": 100, "rejected": 0, "retried": 0}
    sent = datadog.intake_to(LOGS)
    assert [r.status for r in sent] == [202] * len(sent), "no request over a limit"
    assert len(sent) >= 2 and sum(r.decompressed_bytes for r in sent) > 5_000_000
    assert all(r.encoding == "gzip" and r.decompressed_bytes <= 5_000_000 for r in sent)
    assert [log["modelpulse"]["id"] for log in datadog.logs] == seed.record_ids(org_id)


def test_a_page_of_2500_logs_goes_in_requests_of_at_most_1000(org_id, datadog):
    seed.inference_logs(org_id, 2500)

    summary = export(datadog_export(org_id, datadog, streams=("inference_logs",)))

    assert summary["streams"]["inference_logs"]["shipped"] == 2500
    assert [r.entries for r in datadog.intake_to(LOGS)] == [1000, 1000, 500]
    assert len({log["modelpulse"]["id"] for log in datadog.logs}) == 2500


def test_a_log_over_1_mb_is_rejected_with_the_reason_and_the_rest_of_the_page_ships(org_id, datadog):
    big_inference_logs(org_id, [100, 100, 600_000, 100, 100])  # the third entry is ~1.2 MB
    export_id = datadog_export(org_id, datadog, page_size=100, streams=("inference_logs",))
    ids = seed.record_ids(org_id)

    summary = export(export_id)

    assert summary["status"] == "completed_with_errors", "rejected, not failed"
    assert summary["streams"]["inference_logs"] == {"shipped": 4, "rejected": 1, "retried": 0}
    (rejected,) = seed.rejected(summary["run_id"])
    assert rejected.record_id == ids[2] and "over Datadog's 1 MB limit for one log" in rejected.reason
    assert [log["modelpulse"]["id"] for log in datadog.logs] == ids[:2] + ids[3:]
    assert datadog.truncated == 0, "nothing reached Datadog to be truncated"
    assert seed.watermark(export_id) is not None


def test_series_requests_stay_under_the_compressed_limit(org_id, datadog):
    varied_drift_metrics(org_id, 8000)
    export_id = datadog_export(org_id, datadog, page_size=8000, streams=("drift_metrics",))

    summary = export(export_id)

    assert summary["streams"]["drift_metrics"] == {"shipped": 8000, "rejected": 0, "retried": 0}
    sent = datadog.intake_to(SERIES)
    assert [r.status for r in sent] == [202] * len(sent), "no request over a limit"
    # One body would have been within the uncompressed limit, not within the compressed one.
    assert sum(r.decompressed_bytes for r in sent) < 5_242_880
    assert sum(r.sent_bytes for r in sent) > 512_000
    assert len(sent) >= 2 and all(r.status == 202 and r.sent_bytes <= 512_000 for r in sent)
    assert len({s["tags"][-2] for s in datadog.series}) == 8000, "every series once (its feature tag)"


def test_rate_limited_series_wait_for_the_reset_and_are_sent_once(org_id, datadog):
    seed.drift_metrics(org_id, 4)
    datadog.rate_limit(1, reset=1)

    summary = export(datadog_export(org_id, datadog, streams=("drift_metrics",)))

    assert summary["streams"]["drift_metrics"] == {"shipped": 4, "rejected": 0, "retried": 4}
    assert datadog.rate_limited == 1
    assert len(datadog.series) == 4 and [r.status for r in datadog.intake_to(SERIES)] == [202]


def test_a_5xx_is_re_sent_and_another_4xx_rejects_the_requests_records(org_id, datadog):
    seed.inference_logs(org_id, 3)
    seed.drift_metrics(org_id, 2)
    datadog.script(503, 400)  # the logs request: 503, then 400

    summary = export(datadog_export(org_id, datadog))

    assert summary["status"] == "completed_with_errors"
    assert summary["streams"]["inference_logs"] == {"shipped": 0, "rejected": 3, "retried": 3}
    assert summary["streams"]["drift_metrics"] == {"shipped": 2, "rejected": 0, "retried": 0}
    reasons = {r.reason for r in seed.rejected(summary["run_id"])}
    assert reasons == {"Datadog answered 400: injected 400"}


def test_a_413_from_something_with_smaller_limits_splits_the_request(org_id, datadog):
    seed.inference_logs(org_id, 10)
    datadog.script(413)

    summary = export(datadog_export(org_id, datadog, streams=("inference_logs",)))

    assert summary["streams"]["inference_logs"] == {"shipped": 10, "rejected": 0, "retried": 0}
    assert [r.entries for r in datadog.intake_to(LOGS)] == [5, 5]
    assert [log["modelpulse"]["id"] for log in datadog.logs] == seed.record_ids(org_id)


@pytest.mark.parametrize(("status", "words"), [(401, "401 Unauthorized"), (403, "403 Forbidden")])
def test_401_and_403_fail_the_run_naming_the_key(org_id, datadog, status, words):
    seed.inference_logs(org_id, 3)
    export_id = datadog_export(org_id, datadog, streams=("inference_logs",))
    datadog.script(status)

    with pytest.raises(Exception, match="rejected the API key"):
        export(export_id)

    run = seed.only_run(export_id)
    assert run.status == "failed" and f"Datadog rejected the API key ({words})" in run.error
    assert len(datadog.requests) == 1 and seed.watermark(export_id) is None


def _post(datadog, path: str, body: bytes, encoding: str | None) -> httpx.Response:
    headers = {"DD-API-KEY": API_KEY, "Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return httpx.post(datadog.url + path, content=body, headers=headers, timeout=30)


def _logs(count: int, size: int = 10) -> bytes:
    return json.dumps([{"message": "x" * size}] * count).encode()


@pytest.mark.parametrize(
    ("path", "body", "encoding", "status"),
    [
        (LOGS, gzip.compress(_logs(2)), "gzip", 202),
        (LOGS, _logs(2), None, 202),
        (LOGS, gzip.compress(_logs(1001)), "gzip", 400),
        (LOGS, gzip.compress(_logs(50, 100_001)), "gzip", 413),  # 5,000,xxx bytes decompressed
        (LOGS, _logs(2), "gzip", 400),  # says gzip, is not
        (LOGS, gzip.compress(_logs(2)), "br", 415),
        (SERIES, gzip.compress(b'{"series":[]}'), "gzip", 202),
        (SERIES, b'{"series":["' + secrets.token_hex(260_000).encode() + b'"]}', None, 413),  # 520 kB as sent
        (SERIES, gzip.compress(b'{"series":["' + b"x" * 5_242_880 + b'"]}'), "gzip", 413),  # small, inflates past 5 MiB
        (EVENTS, gzip.compress(b'{"title":"t","text":"x"}'), "gzip", 415),
    ],
    ids=["logs-gzip", "logs-plain", "logs-1001-entries", "logs-over-5mb", "logs-not-gzip", "logs-brotli",
         "series-gzip", "series-over-512kb-sent", "series-over-5mib-decompressed", "events-gzip"],
)
def test_the_fake_refuses_what_the_intake_refuses(datadog, path, body, encoding, status):
    response = _post(datadog, path, body, encoding)

    assert response.status_code == status, response.text
    (recorded,) = datadog.intake
    assert recorded.status == status and recorded.sent_bytes == len(body)
    if path == LOGS and status >= 400:
        assert response.json()["errors"][0]["status"] == str(status), "the Logs intake's HTTPLogErrors body"
