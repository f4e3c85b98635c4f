"""Splunk HEC indexer acknowledgement: the watermark moves only past events HEC confirmed indexed.

Against the HEC fake (tests/fakes/splunk.py), which checks what Splunk checks: indexer
acknowledgement per token, a GUID data channel on every request of an ack token, ackIds per channel
confirmed only after a delay (or never, when lost), forgotten once reported true.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from blocks.splunk import SplunkHecConnection
from flows.export import export
from tasks.sinks.base import ExportTarget, SinkUnavailable
from tasks.sinks.splunk import ACK_RESENDS, CHANNEL_HEADER, batch_spans, channel_of, encode_events, ship_page
from tests.exports import seed
from tests.fakes.splunk import SplunkHecFake

TOKEN = "hec-secret-token-91bd"
ACK_TIMEOUT = 1  # the smallest the API accepts: lost acks are re-sent after a second


@pytest.fixture
def hec_ack() -> Iterator[SplunkHecFake]:
    """HEC whose token has indexer acknowledgement enabled; acks confirm 0.2 s after the events."""
    with SplunkHecFake(token=TOKEN, ack=True, ack_delay=0.2) as fake:
        yield fake


def ack_export(org_id: str, hec: SplunkHecFake, **config: Any) -> str:
    return seed.export(
        org_id,
        "splunk",
        {"hec_url": hec.url, "page_size": 10, "indexer_ack": True, "ack_timeout_seconds": ACK_TIMEOUT, **config},
        {"hec_token": TOKEN},
    )


def event_requests(hec: SplunkHecFake) -> list:
    return [r for r in hec.requests if r.path == "/services/collector/event"]


def position(record_id: str) -> str:
    return record_id.split("_", 1)[1]


def log_records(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Inference-log records as the export reads them from the store."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "id": i,
            "record_id": f"inf_{i}",
            "position": str(i),
            "organization_id": "org_1",
            "project_id": None,
            "model": "churn",
            "model_version": "3",
            "timestamp": at + timedelta(seconds=i),
            "ingested_at": at + timedelta(seconds=i),
            "request_id": f"req-{i}",
            "features": {"age": 30 + i % 40, "plan": "pro", "notes": "x" * 300},
            "prediction": {"churn": 0.25},
            "label": None,
            "latency_ms": 12.5,
        }
        for i in range(start, start + count)
    ]


def sink(hec: SplunkHecFake, export_id: str = "exp_ack", **config: Any) -> tuple[SplunkHecConnection, ExportTarget]:
    connection = SplunkHecConnection(hec_url=hec.url, hec_token=TOKEN)
    settings = {"hec_url": hec.url, "indexer_ack": True, "ack_timeout_seconds": ACK_TIMEOUT, **config}
    return connection, ExportTarget(export_id, "org_1", None, settings)


# The fake itself: what the sink is tested against must behave as HEC does.


def test_hec_fake_checks_channels_and_answers_acks_as_splunk_does():
    channel, other = "0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    auth = {"Authorization": f"Splunk {TOKEN}"}
    event = b'{"event": {"id": 1}, "fields": {"modelpulse.id": "inf_1"}}'
    with SplunkHecFake(token=TOKEN, ack=True) as hec, httpx.Client(base_url=hec.url, headers=auth) as client:

        def send(channel: str | None) -> dict:
            return client.post(
                "/services/collector/event", content=event, headers={CHANNEL_HEADER: channel} if channel else {}
            ).json()

        def acks(ids: list[int], channel: str = channel) -> dict:
            return client.post("/services/collector/ack", params={"channel": channel}, json={"acks": ids}).json()

        assert send(None) == {"text": "Data channel is missing", "code": 10}
        assert send("not-a-guid") == {"text": "Invalid data channel", "code": 11}
        assert client.post("/services/collector/ack", json={"acks": [0]}).json()["code"] == 10
        hec.ack_delay = 3600  # pending for the rest of the test
        assert send(channel) == {"text": "Success", "code": 0, "ackId": 0}
        hec.ack_delay = 0
        assert send(channel)["ackId"] == 1 and send(other)["ackId"] == 0, "ackIds count per channel"
        hec.lose_ack(1)
        assert send(channel)["ackId"] == 2
        assert acks([0, 1, 2, 7]) == {"acks": {"0": False, "1": True, "2": False, "7": False}}
        assert acks([1]) == {"acks": {"1": False}}, "an ackId reported true is forgotten"
        assert acks([0], other) == {"acks": {"0": True}}
        assert hec.ids() == ["inf_1"] * 4, "the events of pending and lost acks were indexed"

    with SplunkHecFake(token=TOKEN, ack=False) as hec, httpx.Client(base_url=hec.url, headers=auth) as client:
        assert client.post("/services/collector/event", content=event).json() == {"text": "Success", "code": 0}
        answer = client.post("/services/collector/ack", params={"channel": channel}, json={"acks": [0]})
        assert answer.status_code == 400 and answer.json() == {"text": "ACK is disabled", "code": 14}


# The sink against the fake.


def test_a_page_returns_only_once_hec_confirmed_every_batch(hec_ack):
    records = log_records(3000)
    spans = batch_spans(encode_events(sink(hec_ack)[1], "inference_logs", records))
    assert len(spans) > 1, "the page needs several batches for this test to mean something"

    result = ship_page(*sink(hec_ack), "inference_logs", records)

    # Confirmed before ship_page returned: the export records the page (moves the watermark) after.
    assert sorted(ack for _, ack in hec_ack.confirmed) == list(range(len(spans)))
    assert (result.shipped, result.rejected, result.retried) == (3000, [], 0)
    assert Counter(hec_ack.ids()) == Counter(r["record_id"] for r in records)
    assert {r.header(CHANNEL_HEADER) for r in hec_ack.requests} == {channel_of("exp_ack")}


def test_concurrent_pages_of_one_export_share_its_channel_and_each_waits_for_its_own_acks(hec_ack):
    pages = [log_records(40, start=0), log_records(40, start=40), log_records(40, start=80)]
    results: dict[int, Any] = {}

    def ship(number: int) -> None:
        results[number] = ship_page(*sink(hec_ack), "inference_logs", pages[number])

    threads = [threading.Thread(target=ship, args=(number,)) for number in range(len(pages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [results[n].shipped for n in range(len(pages))] == [40, 40, 40]
    assert sorted(hec_ack.ids()) == sorted(r["record_id"] for page in pages for r in page)
    assert hec_ack.channels() == [channel_of("exp_ack")]
    assert sorted(ack for _, ack in hec_ack.confirmed) == [0, 1, 2]
    assert channel_of("exp_ack") != channel_of("exp_other")


def test_a_batch_never_confirmed_is_re_sent_then_the_page_fails(hec_ack):
    records = log_records(5)
    hec_ack.never_ack("inf_3")

    with pytest.raises(SinkUnavailable, match=r"did not confirm 1 batch\(es\) as indexed through 2 re-sends"):
        ship_page(*sink(hec_ack), "inference_logs", records)

    assert len(event_requests(hec_ack)) == 1 + ACK_RESENDS
    assert len(hec_ack.lost_acks) == 1 + ACK_RESENDS and hec_ack.confirmed == []


# Whole export runs.


def test_export_with_indexer_ack_completes_once_hec_confirms_every_page(org_id, hec_ack):
    seed.inference_logs(org_id, 25)
    seed.drift_metrics(org_id, 2)
    seed.events(org_id, ["threshold.breached"])
    export_id = ack_export(org_id, hec_ack)
    ids = seed.record_ids(org_id)

    summary = export(export_id)

    assert summary["status"] == "completed"
    assert summary["streams"]["inference_logs"] == {"shipped": 25, "rejected": 0, "retried": 0}
    assert len(hec_ack.ids()) == len(set(hec_ack.ids())) == 28
    issued = set(hec_ack.acked_ids)
    assert len(issued) == 5 and set(hec_ack.confirmed) == issued, "every page's ackIds were confirmed"
    assert {r.header(CHANNEL_HEADER) for r in hec_ack.requests if r.method == "POST"} == {channel_of(export_id)}
    assert seed.watermark(export_id) == position(ids[-1])
    assert all(event["fields"]["modelpulse.id"] == event["event"]["id"] for event in hec_ack.events)


def test_a_lost_ack_is_re_sent_and_nothing_is_missing(org_id, hec_ack):
    seed.inference_logs(org_id, 30)  # three pages of 10, one batch each
    export_id = ack_export(org_id, hec_ack)
    ids = seed.record_ids(org_id)
    hec_ack.lose_ack(1)

    summary = export(export_id)

    assert summary["status"] == "completed"
    ((lost_channel, lost_ack),) = hec_ack.lost_acks
    lost_ids = hec_ack.acked_ids[(lost_channel, lost_ack)]
    assert len(lost_ids) == 10, "the lost ack covered one page's batch"
    assert summary["streams"]["inference_logs"] == {"shipped": 30, "rejected": 0, "retried": 10}
    counts = Counter(hec_ack.ids())
    assert set(counts) == set(ids), "nothing missing"
    assert {record_id for record_id, n in counts.items() if n > 1} == set(lost_ids), "duplicates only by the re-send"
    assert max(counts.values()) == 2
    assert seed.watermark(export_id) == position(ids[-1])


def test_acks_that_never_confirm_keep_the_watermark_before_the_page(org_id, hec_ack):
    seed.inference_logs(org_id, 15)
    # Below what the API accepts (seeded directly): each of the page's four attempts waits out three.
    export_id = ack_export(org_id, hec_ack, ack_timeout_seconds=0.25)
    ids = seed.record_ids(org_id)
    hec_ack.never_ack(ids[12])  # in the second page

    with pytest.raises(Exception, match="did not confirm"):
        export(export_id)

    run = seed.only_run(export_id)
    assert run.status == "failed" and "did not confirm 1 batch(es) as indexed" in run.error
    assert seed.watermark(export_id) == position(ids[9]), "past the first page only"
    assert set(ids[10:]) <= set(hec_ack.ids()), "received (even several times), never confirmed"


def test_invalid_event_and_busy_hec_with_indexer_ack(org_id, hec_ack):
    seed.inference_logs(org_id, 10)
    export_id = ack_export(org_id, hec_ack)
    ids = seed.record_ids(org_id)
    hec_ack.invalid(ids[4])
    hec_ack.busy(1)

    summary = export(export_id)

    # busy: the batch of 10 re-sent; the 4 events HEC took before the invalid one came without an
    # ackId, so they are re-sent in a request that has one.
    assert summary["streams"]["inference_logs"] == {"shipped": 9, "rejected": 1, "retried": 14}
    counts = Counter(hec_ack.ids())
    assert set(counts) == set(ids) - {ids[4]}
    assert {record_id for record_id, n in counts.items() if n > 1} == set(ids[:4])
    (rejected,) = seed.rejected(summary["run_id"])
    assert rejected.record_id == ids[4] and "code 6" in rejected.reason
    assert seed.watermark(export_id) == position(ids[-1])


# Token settings that do not fit the export's, through the API's /test and a run.


def create(api, org_id: str, hec: SplunkHecFake, **config: Any) -> str:
    response = api.post(f"/organizations/{org_id}/exports", json={
        "name": "splunk", "type": "splunk", "streams": ["inference_logs"],
        "config": {"hec_url": hec.url, "page_size": 100, **config}, "credentials": {"hec_token": TOKEN},
    })  # fmt: skip
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_ack_disabled_on_the_token_fails_test_and_run_saying_how_to_fix_it(api, org_id):
    with SplunkHecFake(token=TOKEN, ack=False) as hec:
        export_id = create(api, org_id, hec, indexer_ack=True)
        seed.inference_logs(org_id, 5)

        tested = api.post(f"/organizations/{org_id}/exports/{export_id}/test").json
        with pytest.raises(Exception, match="indexer acknowledgement is disabled"):
            export(export_id)

    assert tested["ok"] is False
    checks = {check["name"]: check for check in tested["checks"]}
    assert checks["reachable"]["ok"] and checks["credentials"]["ok"]
    detail = checks["indexer_ack"]["detail"]
    assert checks["indexer_ack"]["ok"] is False
    assert "indexer acknowledgement is disabled on the Splunk HEC token (code 14: ACK is disabled)" in detail
    assert "Enable indexer acknowledgement" in detail and "config.indexer_ack to false" in detail
    run = seed.only_run(export_id)
    assert run.status == "failed" and run.error == f"SinkMisconfigured: {detail}"
    assert len(event_requests(hec)) == 1 + 1, "the /test probe, then one batch: no retry"
    assert seed.watermark(export_id) is None


def test_a_token_with_ack_enabled_needs_indexer_ack_on_the_export(api, org_id, hec_ack):
    export_id = create(api, org_id, hec_ack)  # indexer_ack defaults to false
    seed.inference_logs(org_id, 5)

    tested = api.post(f"/organizations/{org_id}/exports/{export_id}/test").json
    with pytest.raises(Exception, match="set the export's config.indexer_ack to true"):
        export(export_id)

    assert tested["ok"] is False
    assert tested["checks"][-1]["name"] == "indexer_ack" and tested["checks"][-1]["ok"] is False
    assert "set the export's config.indexer_ack to true" in tested["checks"][-1]["detail"]
    assert "code 10: Data channel is missing" in tested["checks"][-1]["detail"]
    run = seed.only_run(export_id)
    assert run.status == "failed" and run.error.startswith("SinkMisconfigured: Splunk HEC requires a data channel")
    assert len(event_requests(hec_ack)) == 1 + 1, "the /test probe, then one batch: no retry"
    assert hec_ack.events == [] and seed.watermark(export_id) is None


def test_connection_test_with_indexer_ack_checks_the_ack_endpoint(api, org_id, hec_ack):
    export_id = create(api, org_id, hec_ack, indexer_ack=True)

    tested = api.post(f"/organizations/{org_id}/exports/{export_id}/test").json

    assert tested["ok"] is True, tested
    assert [check["name"] for check in tested["checks"]] == ["reachable", "credentials", "indexer_ack"]
    (ack_query,) = [r for r in hec_ack.requests if r.path == "/services/collector/ack"]
    assert ack_query.header(CHANNEL_HEADER) == ack_query.query["channel"][0] != channel_of(export_id), (
        "probed on a channel of its own: a confirmation on the export's channel is a run's"
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"indexer_ack": "sometimes"}, "config.indexer_ack"),
        ({"indexer_ack": True, "ack_timeout_seconds": 0}, "config.ack_timeout_seconds"),
        ({"indexer_ack": True, "ack_timeout_seconds": 3601}, "config.ack_timeout_seconds"),
        ({"ack_timeout_seconds": "soon"}, "config.ack_timeout_seconds"),
    ],
)
def test_ack_settings_are_validated(api, org_id, config, field):
    response = api.post(f"/organizations/{org_id}/exports", json={
        "name": "splunk", "type": "splunk",
        "config": {"hec_url": "https://splunk.internal:8088", **config}, "credentials": {"hec_token": TOKEN},
    })  # fmt: skip

    assert response.status_code == 422, response.json
    assert field in [error["field"] for error in response.json["errors"]]


def test_ack_settings_default_off_and_are_kept(api, org_id):
    base = f"/organizations/{org_id}/exports"
    body = {"name": "splunk", "type": "splunk", "config": {"hec_url": "https://splunk.internal:8088"},
            "credentials": {"hec_token": TOKEN}}  # fmt: skip
    created = api.post(base, json=body).json
    assert created["config"]["indexer_ack"] is False and created["config"]["ack_timeout_seconds"] == 300

    body["config"] = {**body["config"], "indexer_ack": True, "ack_timeout_seconds": 30}
    updated = api.put(f"{base}/{created['id']}", json=body).json
    assert updated["config"]["indexer_ack"] is True and updated["config"]["ack_timeout_seconds"] == 30
