"""The export flow against the Elasticsearch fake, run in process (the worker path has its own test)."""

from __future__ import annotations

import pytest

from flows.export import export
from store.db import session_scope
from store.models import ExportRun
from store.settings import get_settings
from tests.exports import seed
from tests.support.polling import wait_until

LOGS = "modelpulse-inference-logs"


def make_es_export(org_id, es, password="es-secret-pw-7f3a", **config):
    return seed.export(
        org_id,
        "elasticsearch",
        {"url": es.url, "verify_ssl": True, "page_size": 10, **config},
        {"username": "elastic", "password": password},
    )


def run_record(run_id: str) -> ExportRun:
    with session_scope() as session:
        return session.get_one(ExportRun, run_id)


def test_incremental_runs_ship_each_record_once_and_only_new_ones(org_id, es):
    seed.inference_logs(org_id, 25)
    seed.drift_metrics(org_id, 3)
    seed.events(org_id, ["drift.detected", "model.registered"])
    export_id = make_es_export(org_id, es)

    first = export(export_id)

    assert first["status"] == "completed"
    assert first["streams"]["inference_logs"] == {"shipped": 25, "rejected": 0, "retried": 0}
    assert len(es.ids(LOGS)) == 25 and len(es.ids("modelpulse-drift-metrics")) == 3
    assert len(es.ids("modelpulse-events")) == 2

    seed.inference_logs(org_id, 7, start=25)
    second = export(export_id)

    assert second["streams"]["inference_logs"]["shipped"] == 7
    assert second["streams"]["drift_metrics"]["shipped"] == 0
    assert len(es.ids(LOGS)) == 32
    assert set(es.index_operations.values()) == {1}, "no record was shipped twice"
    newest = max(int(doc_id.removeprefix("inf_")) for doc_id in es.ids(LOGS))
    assert seed.watermark(export_id) == str(newest)


def test_documents_are_ecs_shaped_with_modelpulse_fields_and_a_template(org_id, es):
    seed.inference_logs(org_id, 1)
    seed.drift_metrics(org_id, 1)
    export_id = make_es_export(org_id, es, indices={"inference_logs": "mp-logs"})

    export(export_id)

    (doc_id,) = es.ids("mp-logs")
    document = es.document("mp-logs", doc_id)
    assert document["@timestamp"] == "2026-11-01T00:00:00.000000Z"
    assert document["event"]["dataset"] == "modelpulse.inference_logs"
    assert document["service"]["name"] == "churn"
    assert document["labels"]["model_version"] == "3"
    assert document["modelpulse"]["id"] == doc_id and document["modelpulse"]["features"]["plan"] == "pro"
    drift = es.document("modelpulse-drift-metrics", next(iter(es.ids("modelpulse-drift-metrics"))))
    assert drift["modelpulse"]["method"] == "psi" and drift["labels"]["feature"] == "age"
    assert es.templates["mp-logs"]["index_patterns"] == ["mp-logs"]


def test_backfill_reships_a_time_range_and_leaves_the_watermark(org_id, es):
    seed.inference_logs(org_id, 20)
    export_id = make_es_export(org_id, es)
    export(export_id)
    mark = seed.watermark(export_id)

    summary = export(
        export_id,
        backfill={"streams": ["inference_logs"], "from": "2026-11-01T00:05:00Z", "to": "2026-11-01T00:10:00Z"},
    )

    assert summary["streams"] == {"inference_logs": {"shipped": 5, "rejected": 0, "retried": 0}}
    assert sorted(es.index_operations.values()).count(2) == 5, "exactly the five records in range re-shipped"
    assert run_record(summary["run_id"]).mode == "backfill"
    assert seed.watermark(export_id) == mark


def test_rejected_items_are_recorded_with_the_reason_and_429s_retried(org_id, es):
    seed.inference_logs(org_id, 12)
    export_id = make_es_export(org_id, es)
    ids = seed.record_ids(org_id)
    es.reject(ids[3])
    es.throttle(ids[5], times=2)

    summary = export(export_id)

    assert summary["status"] == "completed_with_errors"
    assert summary["streams"]["inference_logs"] == {"shipped": 11, "rejected": 1, "retried": 2}
    assert ids[5] in es.ids(LOGS) and ids[3] not in es.ids(LOGS)
    rejected = seed.rejected(summary["run_id"])
    assert [(r.record_id, r.status) for r in rejected] == [(ids[3], 400)]
    assert "mapper_parsing_exception" in rejected[0].reason
    # The rejected record is accounted for, so the watermark moves past it.
    assert seed.watermark(export_id) == ids[-1].removeprefix("inf_")


def test_wrong_password_fails_the_run_at_once(org_id, es):
    seed.inference_logs(org_id, 3)
    export_id = make_es_export(org_id, es, password="not-the-password")

    with pytest.raises(Exception, match="rejected the credentials"):
        export(export_id)

    assert len(es.requests) == 1, "no retry after the credentials were refused"
    run = seed.only_run(export_id)
    assert run.status == "failed" and "rejected the credentials (401)" in run.error
    assert seed.watermark(export_id) is None


def retry_waits(flow_run_id) -> list[float]:
    """How long each retry of the run's ship-page tasks was scheduled to wait, in seconds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return [
            (state.state_details.scheduled_time - state.timestamp).total_seconds()
            for run in runs
            if run.task_key.startswith("ship_page")
            for state in prefect.read_task_run_states(run.id)
            if state.name == "AwaitingRetry"
        ]


@pytest.mark.parametrize("backoff", [0.05, 1.0])
def test_a_failed_page_is_retried_after_the_configured_backoff(org_id, es, monkeypatch, backoff):
    monkeypatch.setenv("MODELPULSE_SINK_RETRY_BACKOFF_SECONDS", str(backoff))
    get_settings.cache_clear()
    seed.inference_logs(org_id, 5)
    export_id = make_es_export(org_id, es)
    es.script("drop", "drop", "drop", "drop")  # outlasts the client's own 3 retries: the task retries

    state = export(export_id, return_state=True)
    get_settings.cache_clear()

    assert state.is_completed() and len(es.ids(LOGS)) == 5
    # Task-run states reach Prefect as events, recorded a moment later.
    (wait,) = wait_until(lambda: retry_waits(state.state_details.flow_run_id), 30, "the retry's state in Prefect")
    assert backoff * 0.5 <= wait <= backoff * 1.5 + 0.05, "the first retry waits the backoff, up to 50% jitter"


def test_dropped_connections_and_whole_request_429s_lose_and_duplicate_nothing(org_id, es):
    seed.inference_logs(org_id, 30)
    export_id = make_es_export(org_id, es, concurrency=1)  # one request at a time meets the faults in turn
    # Four drops outlast the client's own 3 retries, so the ship-page task itself retries too.
    es.script(429, "drop", "drop", "drop", "drop", 503)

    summary = export(export_id)

    assert summary["status"] == "completed"
    assert len(es.ids(LOGS)) == 30
    assert set(es.index_operations.values()) == {1}
    assert summary["streams"]["inference_logs"]["retried"] >= 10
