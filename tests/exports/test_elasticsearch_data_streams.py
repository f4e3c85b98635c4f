"""Elasticsearch data streams and managed templates, through the export flow run in process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, insert

from flows.export import export
from store.db import session_scope
from store.models import ExportWatermark, InferenceLog
from tasks.sinks.elasticsearch import CHUNK_SIZE
from tasks.sinks.elasticsearch_templates import TEMPLATE_PRIORITY
from tests.exports import seed

LOGS = "modelpulse-inference-logs"
DRIFT = "modelpulse-drift-metrics"
EVENTS = "modelpulse-events"


def make_export(org_id, es, **config):
    return seed.export(
        org_id,
        "elasticsearch",
        {"url": es.url, "page_size": 10, **config},
        {"username": "elastic", "password": "es-secret-pw-7f3a"},
    )


def inference_log(org_id: str, minute: int, features: dict) -> None:
    """One inference log with the given features (a poisoned record, say)."""
    with session_scope() as session:
        session.execute(insert(InferenceLog), [{
            "organization_id": org_id, "project_id": None, "model": "churn", "model_version": "3",
            "timestamp": seed.BASE_TIME + timedelta(minutes=minute), "request_id": f"req-{minute}",
            "features": features, "prediction": {"churn": 0.5}, "label": None, "latency_ms": 3.0,
        }])


def reset_watermarks(export_id: str) -> None:
    with session_scope() as session:
        session.execute(delete(ExportWatermark).where(ExportWatermark.export_id == export_id))


def test_a_data_stream_export_ships_create_ops_into_data_streams_made_from_its_templates(org_id, es):
    seed.inference_logs(org_id, 25)
    seed.drift_metrics(org_id, 3)
    seed.events(org_id, ["drift.detected"])
    export_id = make_export(org_id, es, mode="data_stream")

    summary = export(export_id)

    assert summary["status"] == "completed"
    assert summary["streams"]["inference_logs"] == {"shipped": 25, "rejected": 0, "retried": 0}
    assert es.op_types == {"create": 29}, "create operations only"
    assert es.data_streams() == {LOGS, DRIFT, EVENTS}
    assert es.ids(LOGS) == set(seed.record_ids(org_id))
    # Each data stream was made from ModelPulse's template, which names its ILM policy.
    assert {(t.template, t.policy) for t in es.targets.values()} == {(LOGS, LOGS), (DRIFT, DRIFT), (EVENTS, EVENTS)}
    document = es.document(LOGS, seed.record_ids(org_id)[0])
    assert document["@timestamp"] == "2026-11-01T00:00:00.000000Z" and document["modelpulse"]["features"]["plan"] == "pro"
    assert "data_stream" not in document, "data_stream.* are constant_keyword values of the mapping"


def test_templates_are_composable_with_explicit_mappings_and_an_ilm_policy(org_id, es):
    seed.inference_logs(org_id, 2)
    export_id = make_export(org_id, es, mode="data_stream", retention_days=7)

    export(export_id)

    template = es.templates[LOGS]
    assert template["index_patterns"] == [LOGS] and template["priority"] == TEMPLATE_PRIORITY
    assert template["data_stream"] == {}
    assert template["template"]["settings"] == {"index.lifecycle.name": LOGS}
    mappings = template["template"]["mappings"]
    fields = mappings["properties"]
    assert fields["@timestamp"] == {"type": "date"}
    assert fields["event"]["properties"]["dataset"]["type"] == "keyword"
    assert fields["service"]["properties"]["name"]["type"] == "keyword"
    assert fields["data_stream"]["properties"]["dataset"] == {
        "type": "constant_keyword", "value": "modelpulse.inference_logs"
    }
    ours = fields["modelpulse"]["properties"]
    assert ours["id"]["type"] == ours["model"]["type"] == "keyword"
    assert ours["latency_ms"] == {"type": "double"} and ours["ingested_at"] == {"type": "date"}
    assert ours["features"] == {"type": "object", "dynamic": True}
    assert es.field_type(LOGS, "labels.model") == "keyword", "labels.* strings are keywords"
    assert es.field_type(LOGS, "modelpulse.features.plan") == "keyword"
    assert es.field_type(LOGS, "modelpulse.features.age") == "long"
    phases = es.policies[LOGS]["policy"]["phases"]
    assert phases["delete"] == {"min_age": "7d", "actions": {"delete": {}}}
    assert "max_age" in phases["hot"]["actions"]["rollover"]


def test_a_reshipped_page_answers_409_which_counts_as_shipped_without_duplicates(org_id, es):
    seed.inference_logs(org_id, 12)
    export_id = make_export(org_id, es, mode="data_stream")
    export(export_id)
    reset_watermarks(export_id)  # as if the watermark commit had been lost after the pages shipped

    again = export(export_id)

    assert again["status"] == "completed"
    assert again["streams"]["inference_logs"] == {"shipped": 12, "rejected": 0, "retried": 0}
    assert seed.rejected(again["run_id"]) == []
    assert len(es.ids(LOGS)) == 12
    assert set(es.index_operations.values()) == {2}, "every document was sent twice"
    assert set(es.versions.values()) == {1}, "and written once: no overwrite, no duplicate"


def test_a_poisoned_record_is_rejected_with_the_mapping_error_and_the_others_ship(org_id, es):
    seed.inference_logs(org_id, 4)  # features.age is learnt as a long
    inference_log(org_id, 4, {"age": "thirty", "plan": "pro"})
    seed.inference_logs(org_id, 3, start=5)
    export_id = make_export(org_id, es, mode="data_stream")
    ids = seed.record_ids(org_id)

    summary = export(export_id)

    assert summary["status"] == "completed_with_errors"
    assert summary["streams"]["inference_logs"] == {"shipped": 7, "rejected": 1, "retried": 0}
    (rejected,) = seed.rejected(summary["run_id"])
    assert (rejected.record_id, rejected.status) == (ids[4], 400)
    assert rejected.reason.startswith("mapper_parsing_exception: failed to parse field [modelpulse.features.age]")
    assert "thirty" in rejected.reason
    assert es.ids(LOGS) == set(ids) - {ids[4]}
    assert seed.watermark(export_id) == ids[-1].removeprefix("inf_")


def test_busy_items_are_resent_alone_and_a_page_goes_in_chunks(org_id, es):
    seed.inference_logs(org_id, CHUNK_SIZE + 100)
    export_id = make_export(org_id, es, mode="data_stream", page_size=CHUNK_SIZE + 100)
    ids = seed.record_ids(org_id)
    es.throttle(ids[7], times=2)

    summary = export(export_id)

    assert summary["streams"]["inference_logs"] == {"shipped": CHUNK_SIZE + 100, "rejected": 0, "retried": 2}
    assert es.op_types["create"] == CHUNK_SIZE + 100 + 2, "only the throttled item was sent again"
    assert es.bulk_requests == 2 + 2  # the page in two chunks, then the throttled item twice
    bulk = [r for r in es.requests if r.path.endswith("/_bulk")]
    assert bulk[0].path == f"/{LOGS}/_bulk" and bulk[0].body.startswith(b'{"create":{"_id":"inf_')
    assert bulk[0].body.count(b"\n") == 2 * CHUNK_SIZE


def test_templates_refused_for_lack_of_privileges_fail_the_run_with_what_to_do(org_id, es):
    seed.inference_logs(org_id, 3)
    export_id = make_export(org_id, es, mode="data_stream")
    es.refuse_template_writes()

    with pytest.raises(Exception, match="manage_index_templates"):
        export(export_id)

    run = seed.only_run(export_id)
    assert run.status == "failed" and "config.manage_templates" in run.error
    assert es.bulk_requests == 0 and seed.watermark(export_id) is None


def test_manage_templates_false_installs_nothing(org_id, es):
    seed.inference_logs(org_id, 3)
    export_id = make_export(org_id, es, mode="data_stream", manage_templates=False)
    es.refuse_template_writes()  # any attempt would fail the run

    summary = export(export_id)

    assert summary["status"] == "completed"
    assert not es.template_puts and not es.policies
    assert not [r for r in es.requests if "_index_template" in r.path or "_ilm" in r.path]
    assert es.op_types == {"create": 3}


def test_a_name_under_a_built_in_template_gets_ours_which_outranks_it(org_id, es):
    seed.inference_logs(org_id, 2)
    export_id = make_export(org_id, es, mode="data_stream", indices={"inference_logs": "logs-modelpulse-default"})

    assert export(export_id)["status"] == "completed"

    assert es.targets["logs-modelpulse-default"].template == "logs-modelpulse-default"
    assert es.field_type("logs-modelpulse-default", "modelpulse.latency_ms") == "double"


def test_an_export_without_mode_keeps_index_ops_that_overwrite(org_id, es):
    seed.inference_logs(org_id, 5)
    export_id = make_export(org_id, es)  # stored before modes existed: no "mode" key
    export(export_id)
    reset_watermarks(export_id)

    again = export(export_id)

    assert again["streams"]["inference_logs"] == {"shipped": 5, "rejected": 0, "retried": 0}
    assert es.op_types == {"index": 10}
    assert es.targets[LOGS].kind == "index" and not es.data_streams()
    assert set(es.versions.values()) == {2}, "index ops overwrite a re-shipped document"
    template = es.templates[LOGS]
    assert "data_stream" not in template and "settings" not in template["template"]
    assert not es.policies
    assert "data_stream" not in template["template"]["mappings"]["properties"]
