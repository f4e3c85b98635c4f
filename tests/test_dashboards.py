"""The dashboards and alert rules in deploy/ are importable, and reference only what ModelPulse serves and sends.

Pure file checks, no servers: the checkers are in tests/support/dashboards.py (what each checks is said
there). Every file passes its checker, and every checker is shown rejecting a broken copy (the
``*_check_rejects`` tests): a metric, label, field, tag or attribute that does not exist, and a file the
tool would not import.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.drift.statistics import DEFAULT_THRESHOLDS
from tasks.sinks.elasticsearch import DEFAULT_INDICES
from tests.support.dashboards import (
    datadog_problems,
    datadog_vocabulary,
    grafana_panels,
    grafana_problems,
    kibana_problems,
    promql_problems,
    read_ndjson,
    read_promql,
    rule_problems,
)

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "dashboards" / "grafana-modelpulse.json"
KIBANA = ROOT / "deploy" / "dashboards" / "kibana-modelpulse.ndjson"
DATADOG = ROOT / "deploy" / "dashboards" / "datadog-modelpulse.json"
RULES = ROOT / "deploy" / "prometheus" / "modelpulse-rules.yaml"


# --- The files ----------------------------------------------------------------------------------------


def grafana() -> dict[str, Any]:
    return json.loads(GRAFANA.read_text())


def kibana() -> list[dict[str, Any]]:
    objects, problems = read_ndjson(KIBANA.read_text())
    assert problems == []
    return objects


def datadog() -> dict[str, Any]:
    return json.loads(DATADOG.read_text())


def rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


def test_the_grafana_dashboard_imports_and_references_served_metrics():
    dashboard = grafana()
    assert grafana_problems(dashboard) == []
    exprs = " ".join(t["expr"] for p in grafana_panels(dashboard) for t in p.get("targets", []))
    shown = {s.metric.removesuffix("_bucket") for s in read_promql(exprs).selectors}
    assert {
        "modelpulse_webhook_attempts_total", "modelpulse_webhook_event_to_attempt_seconds", "modelpulse_outbox_pending",
        "modelpulse_webhook_deliveries_pending", "modelpulse_webhook_oldest_pending_seconds",
        "modelpulse_export_records_total", "modelpulse_export_lag_seconds", "modelpulse_export_runs_total",
        "modelpulse_registry_syncs_total", "modelpulse_http_requests_total", "modelpulse_http_request_seconds",
        "modelpulse_events_accepted_total",
    } <= shown


def test_the_alert_rules_parse_and_reference_served_metrics():
    document = rules()
    assert rule_problems(document) == []
    alerts = {r["alert"] for g in document["spec"]["groups"] for r in g["rules"]}
    assert {"ModelPulseWebhookFailureRate", "ModelPulseWebhookBacklogStale", "ModelPulseExportLagging",
            "ModelPulseRegistrySyncsFailing"} <= alerts


def test_the_kibana_objects_import_and_reference_mapped_fields():
    objects = kibana()
    assert kibana_problems(objects) == []
    kinds = [o["type"] for o in objects]
    assert kinds.count("index-pattern") == 3 and kinds.count("dashboard") == 1
    views = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    # One data view per stream the sink writes.
    assert {s for s, index in DEFAULT_INDICES.items() for v in views if fnmatch.fnmatchcase(index, v)} == set(
        DEFAULT_INDICES
    )


def test_the_datadog_dashboard_deserializes_and_references_what_the_sink_sends():
    assert datadog_problems(datadog()) == []


def test_the_datadog_vocabulary_is_the_sinks_named_constants():
    from tasks.sinks.datadog import ATTRIBUTE, ID_TAG, METRIC_PREFIX, SOURCE

    vocabulary = datadog_vocabulary()
    assert vocabulary.log_sources == vocabulary.event_sources == {SOURCE}
    assert vocabulary.metrics == {f"{METRIC_PREFIX}{method}" for method in DEFAULT_THRESHOLDS}
    assert f"@{ATTRIBUTE}.latency_ms" in vocabulary.log_attributes
    assert ID_TAG in vocabulary.event_tags
    assert {"organization", "project", "model"} <= vocabulary.log_tags & vocabulary.metric_tags & vocabulary.event_tags


# --- Each check can fail ------------------------------------------------------------------------------


def _first_target(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in grafana_panels(dashboard) if p.get("title") == title)["targets"][0]


def _set_expr(title: str, expr: str, legend: str | None = None):
    def change(dashboard):
        target = _first_target(dashboard, title)
        target["expr"] = expr
        if legend is not None:
            target["legendFormat"] = legend
    return change


def _grafana_variable(query: str):
    def change(dashboard):
        dashboard["templating"]["list"][0]["query"]["query"] = query
    return change


def _grafana_panel(key: str, value: Any, title: str = "Outbox pending"):
    def change(dashboard):
        panel = next(p for p in grafana_panels(dashboard) if p.get("title") == title)
        if value is None:
            panel.pop(key)
        else:
            panel[key] = copy.deepcopy(value)
    return change


def _duplicate_id(dashboard):
    panels = [p for p in grafana_panels(dashboard) if p["type"] != "row"]
    panels[1]["id"] = panels[0]["id"]


def _overlap(dashboard):
    panels = [p for p in grafana_panels(dashboard) if p["type"] != "row"]
    panels[1]["gridPos"] = dict(panels[0]["gridPos"])


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set_expr("Webhook attempts by outcome", "sum(rate(modelpulse_nope_total[5m]))"), "modelpulse_nope_total"),
        (_set_expr("Webhook attempts by outcome", "sum by (stream) (rate(modelpulse_webhook_attempts_total[5m]))"),
         "has no label 'stream'"),
        (_set_expr("Export runs by outcome",
                   'sum(rate(modelpulse_export_runs_total{organization=~"$organization"}[5m]))'),
         "modelpulse_export_runs_total has no label 'organization'"),
        (_set_expr("API latency p99 by route",
                   "histogram_quantile(0.99, sum by (le) (rate(modelpulse_http_requests_total_bucket[5m])))"),
         "modelpulse_http_requests_total_bucket: not a metric"),
        (_set_expr("Outbox pending", 'modelpulse_outbox_pending{le="1"}'), "has no label 'le'"),
        (_set_expr("Events accepted by type",
                   'sum by (type) (rate(modelpulse_events_accepted_total{type="$nope"}[5m]))'),
         "$nope: not a variable"),
        (_set_expr("Events accepted by type",
                   "sum by (type) (rate(modelpulse_events_accepted_total[5m]))", "{{route}}"),
         "legend {{route}}"),
        (_grafana_variable("label_values(modelpulse_outbox_pending, organization)"), "has no label 'organization'"),
        (_grafana_variable("label_values(modelpulse_nope_total, organization)"), "modelpulse_nope_total"),
        (_grafana_panel("targets", [{"refId": "A"}]), "no expr"),
        (_grafana_panel("targets", None), "no targets"),
        (_grafana_panel("gridPos", {"x": 20, "y": 0, "w": 8, "h": 4}), "outside the 24-column grid"),
        (_grafana_panel("datasource", {"type": "prometheus", "uid": "prometheus"}), "DS_PROMETHEUS"),
        (_duplicate_id, "not unique"),
        (_overlap, "overlaps"),
        (lambda d: d.pop("__inputs"), "no DS_PROMETHEUS input"),
        (lambda d: d.pop("schemaVersion"), "schemaVersion missing"),
    ],
)
def test_the_grafana_check_rejects(change, problem):
    dashboard = grafana()
    change(dashboard)
    problems = grafana_problems(dashboard)
    assert any(problem in p for p in problems), problems


def _rule(name: str, **changes: Any):
    def change(document):
        rule = next(r for g in document["spec"]["groups"] for r in g["rules"] if r["alert"] == name)
        for key, value in changes.items():
            if value is None:
                rule.pop(key)
            else:
                rule[key] = value
    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_rule("ModelPulseExportLagging", expr="modelpulse_nope_total > 0"), "modelpulse_nope_total"),
        (_rule("ModelPulseExportLagging", expr="max by (model) (modelpulse_export_lag_seconds) > 900"),
         "has no label 'model'"),
        (_rule("ModelPulseWebhookBacklogStale",
               expr='modelpulse_webhook_oldest_pending_seconds{organization="o"} > 300'),
         "has no label 'organization'"),
        (_rule("ModelPulseRegistrySyncsFailing", expr="sum(increase(modelpulse_registry_syncs_total[30m])) > 0"),
         "$labels.type, not a label of its expr"),
        (_rule("ModelPulseExportLagging", **{"for": None}), "`for` missing"),
        (_rule("ModelPulseExportLagging", labels={"team": "ml"}), "labels.severity"),
        (_rule("ModelPulseExportLagging", annotations={"summary": "lag"}), "annotations.description missing"),
        (_rule("ModelPulseWebhookBacklogStale", annotations={
            "summary": "s", "description": '{{ with query "modelpulse_nope" }}{{ . | first | value }}{{ end }}'}),
         "annotation query: modelpulse_nope"),
        (lambda d: d.update(kind="ConfigMap"), "not a monitoring.coreos.com/v1 PrometheusRule"),
    ],
)
def test_the_rule_check_rejects(change, problem):
    document = rules()
    change(document)
    problems = rule_problems(document)
    assert any(problem in p for p in problems), problems


def _lens_column(title: str, label: str, **changes: Any):
    def change(objects):
        lens = next(o for o in objects if o["type"] == "lens" and o["attributes"]["title"] == title)
        layer = next(iter(lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()))
        column = next(c for c in layer["columns"].values() if c["label"] == label)
        column.update(changes)
    return change


def _object(kind: str, **changes: Any):
    def change(objects):
        obj = next(o for o in objects if o["type"] == kind)
        for path, value in changes.items():
            *parents, key = path.split("__")
            target = obj
            for parent in parents:
                target = target[parent]
            target[key] = value
    return change


def _lens_query(objects):
    lens = next(o for o in objects if o["type"] == "lens")
    lens["attributes"]["state"]["query"]["query"] = "modelpulse.nope : 1"


def _drop_data_view(objects):
    objects.remove(next(o for o in objects if o["type"] == "index-pattern"))


def _runtime_field(objects):
    view = next(o for o in objects if o["type"] == "index-pattern" and o["attributes"]["runtimeFieldMap"] != "{}")
    runtime = json.loads(view["attributes"]["runtimeFieldMap"])
    next(iter(runtime.values()))["script"]["source"] = "emit(params._source.modelpulse?.nope.toString())"
    view["attributes"]["runtimeFieldMap"] = json.dumps(runtime)


def _dashboard_reference(objects):
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    dashboard["references"][0]["id"] = "gone"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_lens_column("Inference latency p50 / p99", "p99 latency (ms)", sourceField="modelpulse.nope"),
         "'modelpulse.nope' is not in its data view's mappings"),
        (_lens_column("Inference latency p50 / p99", "p99 latency (ms)", sourceField="modelpulse.model"),
         "percentile of 'modelpulse.model', a keyword field"),
        (_lens_column("Drifted features", "Checks drifted",
                      filter={"query": "modelpulse.nope : true", "language": "kuery"}),
         "KQL names 'modelpulse.nope'"),
        (_lens_column("Event timeline", "Event type", sourceField="modelpulse.model"),
         "'modelpulse.model' is not in its data view's mappings"),
        (_lens_query, "KQL names 'modelpulse.nope'"),
        (_object("index-pattern", attributes__title="modelpulse-logs*"), "matches 0 of the sink's indices"),
        (_object("index-pattern", attributes__title="modelpulse-*"), "matches 3 of the sink's indices"),
        (_object("index-pattern", attributes__timeFieldName="timestamp"), "timeFieldName 'timestamp'"),
        (_object("search", attributes__columns=["modelpulse.model"]), "column 'modelpulse.model'"),
        (_object("dashboard", attributes__panelsJSON="[{"), "panelsJSON: not JSON"),
        (_runtime_field, "reads _source.modelpulse.nope, which the sink does not write"),
        (_drop_data_view, "not in the file"),
        (_dashboard_reference, "references lens gone, not in the file"),
        (_object("lens", typeMigrationVersion=None), "typeMigrationVersion missing"),
    ],
)
def test_the_kibana_check_rejects(change, problem):
    objects = kibana()
    change(objects)
    problems = kibana_problems(objects)
    assert any(problem in p for p in problems), problems


def test_the_ndjson_reader_rejects_a_broken_line():
    objects, problems = read_ndjson(KIBANA.read_text() + "{not json\n")
    assert len(objects) == len(kibana()) and problems and "not JSON" in problems[0]


def _widget(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    def find(widgets):
        for widget in widgets:
            definition = widget["definition"]
            if definition.get("title") == title:
                return definition
            found = find(definition.get("widgets") or [])
            if found:
                return found
        return None

    return find(dashboard["widgets"])


def _request(title: str, **changes: Any):
    def change(dashboard):
        _widget(dashboard, title)["requests"][0].update(changes)
    return change


def _query(title: str, **changes: Any):
    def change(dashboard):
        query = _widget(dashboard, title)["requests"][0]["queries"][0]
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(query.get(key), dict):
                query[key].update(value)
            else:
                query[key] = value
    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_request("Inference logs by model", display_type="lime"), "display_type: 'lime' is not one of"),
        (_query("Inference latency p50 / p99 (ms)", compute={"aggregation": "pc50"}), "queries[0]: matches no model"),
        (_request("Inference logs by model", displaytype="line"), "not a property of TimeseriesWidgetRequest"),
        (lambda d: _widget(d, "Inference logs by model").update(type="timeserie"), "matches no model"),
        (lambda d: d["widgets"].append({"defintion": {"type": "note", "content": "x"}}), "matches no model"),
        (lambda d: d.update(layout_type="grid"), "'grid' is not one of ['free', 'ordered']"),
        (_query("Drift score per feature: psi (distance)", query="max:modelpulse.drift.nope{*} by {feature}"),
         "modelpulse.drift.nope is not a metric the sink sends"),
        (_query("Drift score per feature: psi (distance)", query="max:modelpulse.drift.psi{region:eu} by {feature}"),
         "region:eu filters on a tag the sink does not send"),
        (_query("Drift score per feature: psi (distance)", query="max:modelpulse.drift.psi{*} by {event_type}"),
         "by {event_type}"),
        (_query("Inference logs by model", search={"query": "source:python @modelpulse.request_id:*"}),
         "source:python is not the source"),
        (_query("Inference logs by model", search={"query": "source:modelpulse @modelpulse.nope:*"}),
         "@modelpulse.nope is not an attribute"),
        (_query("Inference logs by model", search={"query": "source:modelpulse region:eu"}), "region: is not a tag"),
        (_query("Inference logs by model", search={"query": "source:modelpulse $region"}), "$region is not a template"),
        (_query("Inference latency p50 / p99 (ms)", compute={"aggregation": "pc99", "metric": "@modelpulse.latency"}),
         "@modelpulse.latency is not an attribute"),
        (_query("Inference logs by model", data_source="rum"), "the sink sends only logs, metrics and events"),
        (lambda d: d["template_variables"].append({"name": "region", "prefix": "region"}),
         "prefix 'region' is no tag the sink sends"),
    ],
)
def test_the_datadog_check_rejects(change, problem):
    dashboard = datadog()
    change(dashboard)
    problems = datadog_problems(dashboard)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("modelpulse_webhook_event_to_attempt_seconds_sum / modelpulse_webhook_event_to_attempt_seconds_count", None),
        ("histogram_quantile(0.5, sum(rate(modelpulse_webhook_event_to_attempt_seconds_bucket[5m])) by (le))", None),
        ("sum(rate(modelpulse_http_requests_total[5m])) by (route) / on (route) group_left "
         "sum(rate(modelpulse_http_requests_total[5m])) by (route)", None),
        ("rate(modelpulse_export_runs_total[5m] offset 1h)", None),
        ("sum(rate(modelpulse_export_runs_total[5m])) by (stream)", "has no label 'stream'"),
        ("modelpulse_outbox_pending_bucket", "not a metric"),
        ("modelpulse_export_records_total / on (method) modelpulse_http_requests_total", None),
        ("modelpulse_export_records_total / on (nope) modelpulse_http_requests_total", "label 'nope'"),
        ('{__name__="modelpulse_outbox_pending"}', "without a metric name"),
        ("modelpulse_outbox_pending ? 1", "cannot read"),
    ],
)
def test_the_promql_reader(expr, problem):
    problems = promql_problems(expr)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems
