"""Checkers for the dashboards and alert rules in deploy/: each returns the problems it finds (none: fine).

Used by tests/test_dashboards.py, which also shows each of them rejecting a broken copy.

- Prometheus (Grafana panels, PrometheusRule): `promql_problems`, `grafana_problems`, `rule_problems`. Every
  metric a PromQL expression selects is in ``store.metrics.SERVED`` (a histogram's ``_bucket``, ``_sum``,
  ``_count`` too), and every label in a ``{...}`` matcher, a ``by``/``without``/``on``/``ignoring`` clause, a
  legend, an annotation's ``$labels`` and a Grafana ``label_values`` variable is one of that metric's labels
  (``le``: buckets only). Expressions are read by a small tokenizer (`read_promql`), not a full PromQL parser.
- Kibana saved objects: `kibana_problems`. They reference only objects in the file; each data view's title
  matches the index the Elasticsearch sink writes for exactly one stream; every field a data view, Lens
  column, KQL query or saved search names is in the mappings the sink installs
  (``tasks.sinks.elasticsearch_templates.template_mappings``) with a type its operation takes, or is a
  runtime field of the data view reading from ``_source`` only what the sink writes.
- Datadog dashboard: `datadog_problems`. The official client's ``Dashboard`` model deserializes it with
  nothing unparsed and no unknown key (`datadog_model_problems`), and every metric, tag, log attribute,
  source and template variable a query names is one the Datadog sink sends (`datadog_reference_problems`):
  read from the bodies ``tasks.sinks.datadog`` builds for sample records (`datadog_vocabulary`).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelSimple,
    OpenApiModel,
    UnparsedObject,
    change_keys_js_to_python,
)
from datadog_api_client.v1.model.dashboard import Dashboard

from store.event_catalog import CATALOG
from store.metrics import SERVED
from tasks.drift.statistics import DEFAULT_THRESHOLDS
from tasks.sinks.datadog import EVENT_TYPES_AS_EVENTS, event_body, log_entry, series_entry
from tasks.sinks.elasticsearch import DEFAULT_INDICES, to_document
from tasks.sinks.elasticsearch_templates import template_mappings
from tasks.sinks.encoding import dumps

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# --- PromQL references ------------------------------------------------------------------------------

PROMQL_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},@])
    """,
    re.VERBOSE,
)
GROUPING = {"by", "without"}
MATCHING = {"on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"bool", "offset", "and", "or", "unless", "atan2"}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: tuple[str, ...]
    at: int  # token index


@dataclass(frozen=True)
class Grouping:
    keyword: str
    labels: tuple[str, ...]
    start: int  # the token span of the aggregation's argument
    end: int


@dataclass
class PromQL:
    selectors: list[Selector]
    groupings: list[Grouping]
    matching_labels: list[str]
    aggregated: bool  # an aggregation operator appears (with or without ``by``)
    problems: list[str]


def metric_labels(name: str) -> tuple[str, ...] | None:
    """The labels ``name`` is served with, or None if ``store.metrics.SERVED`` does not serve it."""
    if name in SERVED:
        return SERVED[name][1]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in SERVED and SERVED[base][0] == "histogram":
            return SERVED[base][1] + (("le",) if suffix == "_bucket" else ())
    return None


def _tokens(expr: str) -> tuple[list[tuple[str, str]], list[str]]:
    tokens, problems, position = [], [], 0
    while position < len(expr):
        match = PROMQL_TOKEN.match(expr, position)
        if not match:
            problems.append(f"cannot read {expr[position:position + 20]!r} in {expr!r}")
            break
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens, problems


def _closing(tokens: list[tuple[str, str]], start: int) -> int:
    """The index of the bracket closing the one at ``start`` (``(`` or ``{``)."""
    pairs = {"(": ")", "{": "}"}
    opening, depth = tokens[start][1], 0
    for index in range(start, len(tokens)):
        text = tokens[index][1]
        if text == opening:
            depth += 1
        elif text == pairs[opening]:
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def _opening(tokens: list[tuple[str, str]], end: int) -> int:
    depth = 0
    for index in range(end, -1, -1):
        text = tokens[index][1]
        if text == ")":
            depth += 1
        elif text == "(":
            depth -= 1
            if depth == 0:
                return index
    return 0


def _label_list(tokens: list[tuple[str, str]], start: int) -> tuple[tuple[str, ...], int]:
    """The identifiers in the ``( a, b )`` starting at ``start``, and the index of its ``)``."""
    end = _closing(tokens, start)
    return tuple(text for kind, text in tokens[start + 1:end] if kind == "ident"), end


def read_promql(expr: str) -> PromQL:
    """The metric selectors, grouping clauses and matching labels of ``expr`` (a tokenizer's reading)."""
    tokens, problems = _tokens(expr)
    result = PromQL([], [], [], False, problems)
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else None
        if kind == "op" and text == "{":
            problems.append(f"a selector without a metric name in {expr!r}")
            index = _closing(tokens, index) + 1
            continue
        if kind != "ident":
            index += 1
            continue
        if text in GROUPING or text in MATCHING:
            if following != "(":
                if text in GROUPING:
                    problems.append(f"{text} without a label list in {expr!r}")
                index += 1
                continue
            labels, end = _label_list(tokens, index + 1)
            if text in MATCHING:
                result.matching_labels.extend(labels)
            elif end + 1 < len(tokens) and tokens[end + 1][1] == "(":  # sum by (x) (args)
                result.groupings.append(Grouping(text, labels, end + 1, _closing(tokens, end + 1)))
            elif index > 0 and tokens[index - 1][1] == ")":  # sum (args) by (x)
                result.groupings.append(Grouping(text, labels, _opening(tokens, index - 1), index - 1))
            else:
                problems.append(f"cannot tell what {text} ({', '.join(labels)}) groups in {expr!r}")
            index = end + 1
            continue
        if text in KEYWORDS:
            index += 1
            continue
        if following == "(" or (text in AGGREGATIONS and following in GROUPING):  # a function or an aggregation
            result.aggregated |= text in AGGREGATIONS
            index += 1
            continue
        if following == "{":
            end = _closing(tokens, index + 1)
            inner = tokens[index + 2:end]
            labels = tuple(
                inner[i][1] for i in range(len(inner)) if inner[i][0] == "ident" and (i == 0 or inner[i - 1][1] == ",")
            )
            result.selectors.append(Selector(text, labels, index))
            index = end + 1
            continue
        result.selectors.append(Selector(text, (), index))
        index += 1
    return result


def promql_problems(expr: str, variables: set[str] | None = None) -> list[str]:
    """What ``expr`` references that ``store.metrics.SERVED`` does not serve: unknown metrics, labels a
    metric does not have (in matchers and in ``by``/``without``/``on``/``ignoring``), unknown ``$variables``."""
    parsed = read_promql(expr)
    problems = list(parsed.problems)
    for selector in parsed.selectors:
        labels = metric_labels(selector.metric)
        if labels is None:
            problems.append(f"{selector.metric}: not a metric ModelPulse serves (store.metrics.SERVED)")
            continue
        for label in selector.labels:
            if label not in labels and label != "__name__":
                problems.append(f"{selector.metric}{{{label}=...}}: {selector.metric} has no label {label!r}")
    for grouping in parsed.groupings:
        inside = [s for s in parsed.selectors if grouping.start <= s.at <= grouping.end]
        if not inside:
            problems.append(f"{grouping.keyword} ({', '.join(grouping.labels)}) groups no metric in {expr!r}")
        for selector in inside:
            labels = metric_labels(selector.metric)
            for label in grouping.labels:
                if labels is not None and label not in labels:
                    problems.append(f"{grouping.keyword} ({label}): {selector.metric} has no label {label!r}")
    everything = set().union(*(metric_labels(s.metric) or () for s in parsed.selectors))
    for label in parsed.matching_labels:
        if label not in everything:
            problems.append(f"on/ignoring ({label}): no metric of {expr!r} has label {label!r}")
    if variables is not None:
        for name in re.findall(r"\$\{?(\w+)", expr):
            if name not in variables and name not in GRAFANA_VARIABLES:
                problems.append(f"${name}: not a variable of the dashboard")
    return problems


def result_labels(expr: str) -> set[str]:
    """The labels ``expr``'s series can carry: its ``by`` labels when it aggregates, else its metrics' labels."""
    parsed = read_promql(expr)
    if parsed.aggregated:
        return {label for g in parsed.groupings if g.keyword == "by" for label in g.labels}
    return set().union(*(metric_labels(s.metric) or () for s in parsed.selectors))


# --- Grafana ----------------------------------------------------------------------------------------

GRAFANA_WIDTH = 24


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    across = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
    return across and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def grafana_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, with those inside collapsed rows."""
    panels = []
    for panel in dashboard.get("panels") or []:
        panels.append(panel)
        panels.extend(panel.get("panels") or [])
    return panels


def grafana_problems(dashboard: dict[str, Any]) -> list[str]:
    """What keeps ``dashboard`` from importing into Grafana as a dashboard over ModelPulse's metrics."""
    problems = []
    for key, kind in (("title", str), ("panels", list), ("schemaVersion", int), ("uid", str), ("templating", dict)):
        if not isinstance(dashboard.get(key), kind):
            problems.append(f"dashboard: {key} missing or not a {kind.__name__}")
    if problems:
        return problems
    if not 36 <= dashboard["schemaVersion"] <= 41:
        problems.append(f"schemaVersion {dashboard['schemaVersion']}: not a Grafana 9-11 schema")
    if len(dashboard["uid"]) > 40:
        problems.append("uid: longer than Grafana's 40 characters")
    inputs = {i.get("name"): i for i in dashboard.get("__inputs") or []}
    if inputs.get("DS_PROMETHEUS", {}).get("pluginId") != "prometheus":
        problems.append("__inputs: no DS_PROMETHEUS input of the prometheus plugin (import would not ask for one)")

    variables = {}
    for variable in dashboard["templating"].get("list") or []:
        variables[variable["name"]] = variable
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") != "query":
            continue
        match = re.fullmatch(r"\s*label_values\(\s*(?:(?P<expr>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*", query or "")
        if not match:
            problems.extend(f"variable {variable['name']}: {p}" for p in promql_problems(query or ""))
            continue
        if match["expr"]:
            problems.extend(f"variable {variable['name']}: {p}" for p in promql_problems(match["expr"]))
            if match["label"] not in result_labels(match["expr"]):
                problems.append(f"variable {variable['name']}: {match['expr']} has no label {match['label']!r}")
        elif not any(match["label"] in labels for _, labels in SERVED.values()):
            problems.append(f"variable {variable['name']}: no served metric has label {match['label']!r}")

    seen_ids: set[Any] = set()
    placed: list[tuple[str, dict[str, int]]] = []
    for panel in grafana_panels(dashboard):
        name = f"panel {panel.get('id')} ({panel.get('title')!r})"
        if not isinstance(panel.get("id"), int) or panel["id"] in seen_ids:
            problems.append(f"{name}: id missing, not an integer or not unique")
        seen_ids.add(panel.get("id"))
        if not panel.get("type"):
            problems.append(f"{name}: no type")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{name}: gridPos needs integer x, y, w, h")
        else:
            if grid["x"] < 0 or grid["w"] <= 0 or grid["h"] <= 0 or grid["x"] + grid["w"] > GRAFANA_WIDTH:
                problems.append(f"{name}: gridPos {grid} outside the {GRAFANA_WIDTH}-column grid")
            problems.extend(f"{name} overlaps {other}" for other, where in placed if _overlaps(grid, where))
            placed.append((name, grid))
        if panel.get("type") == "row":
            continue
        if (panel.get("datasource") or {}).get("uid") != "${DS_PROMETHEUS}":
            problems.append(f"{name}: datasource is not the imported ${{DS_PROMETHEUS}}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{name}: no targets")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
            problems.append(f"{name}: targets need distinct refIds")
        for target in targets:
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{name} target {target.get('refId')}: no expr")
                continue
            problems.extend(f"{name}: {p}" for p in promql_problems(expr, set(variables)))
            available = result_labels(expr)
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat") or ""):
                if label not in available:
                    problems.append(f"{name}: legend {{{{{label}}}}} is not a label of {expr!r}")
    return problems


# --- Prometheus rules ---------------------------------------------------------------------------------

SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")


def rule_problems(document: dict[str, Any]) -> list[str]:
    """What keeps ``document`` from being a PrometheusRule over ModelPulse's metrics."""
    problems = []
    if document.get("apiVersion") != "monitoring.coreos.com/v1" or document.get("kind") != "PrometheusRule":
        problems.append("not a monitoring.coreos.com/v1 PrometheusRule")
    if not (document.get("metadata") or {}).get("name"):
        problems.append("metadata.name missing")
    groups = (document.get("spec") or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        return [*problems, "spec.groups missing or empty"]
    group_names = [g.get("name") for g in groups]
    if len(set(group_names)) != len(group_names) or not all(group_names):
        problems.append("groups need distinct names")
    alerts: set[str] = set()
    for group in groups:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record") or "?"
            if "alert" not in rule:
                problems.append(f"{name}: only alerting rules are expected here")
                continue
            if name in alerts:
                problems.append(f"{name}: alert name repeated")
            alerts.add(name)
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{name}: no expr")
                continue
            problems.extend(f"{name}: {p}" for p in promql_problems(expr))
            if not DURATION.fullmatch(str(rule.get("for", ""))):
                problems.append(f"{name}: `for` missing or not a duration")
            if (rule.get("labels") or {}).get("severity") not in SEVERITIES:
                problems.append(f"{name}: labels.severity must be one of {sorted(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description"):
                if not annotations.get(key):
                    problems.append(f"{name}: annotations.{key} missing")
            available = result_labels(expr)
            for text in annotations.values():
                for label in re.findall(r"\$labels\.(\w+)", text):
                    if label not in available:
                        problems.append(f"{name}: annotation uses $labels.{label}, not a label of its expr")
                for query in re.findall(r'query\s+"((?:\\.|[^"\\])*)"', text):
                    problems.extend(f"{name}: annotation query: {p}" for p in promql_problems(query))
    return problems


# --- Kibana -------------------------------------------------------------------------------------------

KIBANA_WIDTH = 48
VERSION = re.compile(r"\d+\.\d+\.\d+")
NUMERIC = {"double", "float", "half_float", "scaled_float", "long", "integer", "short", "byte", "unsigned_long"}
OPERATION_TYPES = {
    "date_histogram": {"date"},
    "percentile": NUMERIC, "percentile_rank": NUMERIC, "median": NUMERIC, "average": NUMERIC, "sum": NUMERIC,
    "standard_deviation": NUMERIC, "range": NUMERIC, "min": NUMERIC | {"date"}, "max": NUMERIC | {"date"},
    "terms": NUMERIC | {"keyword", "boolean", "ip", "constant_keyword"},
}
RECORDS = "___records___"


@cache
def mapped_fields(stream: str) -> dict[str, str]:
    """Dotted field -> type, for every leaf field of the mappings the Elasticsearch sink installs for
    ``stream`` in both modes (data streams add ``data_stream.*``, which an index lacks)."""
    fields: dict[str, str] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            elif spec.get("type", "object") != "object":
                fields[prefix + name] = spec["type"]

    walk(template_mappings(stream, data_streams=False)["properties"], "")
    return fields


@cache
def written_fields(stream: str) -> frozenset[str]:
    """Every dotted path of the document the Elasticsearch sink writes for a sample record of ``stream``."""
    paths: set[str] = set()
    for record in sample_records(stream):
        _flatten(json.loads(dumps(to_document(stream, record))), "", paths)
    return frozenset(paths)


def _flatten(value: Any, prefix: str, into: set[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            into.add(prefix + key)
            _flatten(inner, f"{prefix}{key}.", into)


def kql_fields(query: str) -> list[str]:
    """The field names a KQL query names (``field : value``, ``field:*``), quoted values ignored."""
    unquoted = re.sub(r'"(?:\\.|[^"\\])*"', '""', query)
    return re.findall(r"(?<![\w.@])([@A-Za-z_][\w.@]*)\s*:", unquoted)


def _json_attribute(problems: list[str], where: str, text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as error:
        problems.append(f"{where}: not JSON ({error})")
        return None


def read_ndjson(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    objects, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            problems.append(f"line {number}: not JSON ({error})")
            continue
        if not isinstance(value, dict):
            problems.append(f"line {number}: not an object")
            continue
        objects.append(value)
    return objects, problems


def kibana_problems(objects: list[dict[str, Any]]) -> list[str]:
    """What keeps ``objects`` (a saved objects export, parsed) from importing into Kibana 8 as dashboards
    over what ModelPulse exports to Elasticsearch."""
    problems: list[str] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for number, obj in enumerate(objects, start=1):
        missing = [k for k in ("type", "id", "attributes", "references") if k not in obj]
        if missing:
            problems.append(f"object {number}: missing {', '.join(missing)}")
            continue
        for key in ("coreMigrationVersion", "typeMigrationVersion"):
            if not VERSION.fullmatch(str(obj.get(key, ""))):
                problems.append(f"{obj['type']} {obj['id']}: {key} missing or not x.y.z")
        if (obj["type"], obj["id"]) in by_key:
            problems.append(f"{obj['type']} {obj['id']}: twice in the file")
        by_key[(obj["type"], obj["id"])] = obj
    for obj in by_key.values():
        names = [r.get("name") for r in obj["references"]]
        if len(set(names)) != len(names):
            problems.append(f"{obj['type']} {obj['id']}: reference names repeated")
        for reference in obj["references"]:
            if (reference.get("type"), reference.get("id")) not in by_key:
                target = f"{reference.get('type')} {reference.get('id')}"
                problems.append(f"{obj['type']} {obj['id']}: references {target}, not in the file")

    views = {oid: obj for (kind, oid), obj in by_key.items() if kind == "index-pattern"}
    view_fields: dict[str, dict[str, str]] = {}
    for oid, view in views.items():
        stream, fields = _data_view(problems, view)
        if stream is not None:
            view_fields[oid] = fields

    def fields_of(obj: dict[str, Any], reference_name: str) -> dict[str, str] | None:
        for reference in obj["references"]:
            if reference.get("name") == reference_name and reference.get("type") == "index-pattern":
                return view_fields.get(reference.get("id"), {})
        problems.append(f"{obj['type']} {obj['id']}: no index-pattern reference named {reference_name!r}")
        return None

    def check_kql(where: str, query: dict[str, Any] | None, fields: dict[str, str]) -> None:
        if query and query.get("language", "kuery") == "kuery":
            for field in kql_fields(query.get("query") or ""):
                if field not in fields:
                    problems.append(f"{where}: KQL names {field!r}, not a field of its data view")

    for (kind, oid), obj in by_key.items():
        where = f"{kind} {oid}"
        attributes = obj["attributes"]
        if kind == "lens":
            _lens(problems, where, attributes, lambda name, o=obj: fields_of(o, name), check_kql)
        elif kind == "search":
            meta = attributes.get("kibanaSavedObjectMeta") or {}
            source = _json_attribute(problems, f"{where} searchSourceJSON", meta.get("searchSourceJSON"))
            if source is None:
                continue
            fields = fields_of(obj, source.get("indexRefName", ""))
            if fields is None:
                continue
            check_kql(where, source.get("query"), fields)
            for column in attributes.get("columns") or []:
                if column not in fields:
                    problems.append(f"{where}: column {column!r} is not a field of its data view")
            for field, _direction in attributes.get("sort") or []:
                if field not in fields:
                    problems.append(f"{where}: sorts on {field!r}, not a field of its data view")
        elif kind == "dashboard":
            _dashboard(problems, where, obj)
    return problems


def _data_view(problems: list[str], view: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The stream a data view shows and its fields (mapped, and its runtime fields)."""
    where = f"index-pattern {view['id']}"
    attributes = view["attributes"]
    title = attributes.get("title") or ""
    streams = [
        stream for stream, index in DEFAULT_INDICES.items()
        if any(fnmatch.fnmatchcase(index, pattern.strip()) for pattern in title.split(","))
    ]
    if len(streams) != 1:
        indices = sorted(DEFAULT_INDICES.values())
        problems.append(f"{where}: title {title!r} matches {len(streams)} of the sink's indices {indices}")
        return None, {}
    stream = streams[0]
    fields = dict(mapped_fields(stream))
    runtime = _json_attribute(problems, f"{where} runtimeFieldMap", attributes.get("runtimeFieldMap", "{}")) or {}
    for name, spec in runtime.items():
        source = (spec.get("script") or {}).get("source") or ""
        reads = re.findall(r"params\._source((?:\??\.\w+\b(?!\s*\())+)", source)  # not method calls
        if not reads or "doc[" in source:
            problems.append(f"{where}: runtime field {name} must read params._source (what the sink writes)")
        for path in reads:
            path = path.replace("?", "").lstrip(".")
            if path not in written_fields(stream):
                problems.append(f"{where}: runtime field {name} reads _source.{path}, which the sink does not write")
        fields[name] = spec.get("type", "keyword")
    for key in ("fieldAttrs", "fieldFormatMap"):
        for name in _json_attribute(problems, f"{where} {key}", attributes.get(key, "{}")) or {}:
            if name not in fields:
                problems.append(f"{where}: {key} names {name!r}, not a field of {stream}")
    if attributes.get("timeFieldName") not in fields:
        problems.append(f"{where}: timeFieldName {attributes.get('timeFieldName')!r} is not a field of {stream}")
    return stream, fields


def _lens(problems: list[str], where: str, attributes: dict[str, Any], fields_of: Any, check_kql: Any) -> None:
    state = attributes.get("state") or {}
    layers = ((state.get("datasourceStates") or {}).get("formBased") or {}).get("layers") or {}
    if not layers:
        problems.append(f"{where}: no formBased layers")
    columns: set[str] = set()
    for layer_id, layer in layers.items():
        fields = fields_of(f"indexpattern-datasource-layer-{layer_id}")
        if fields is None:
            continue
        layer_columns = layer.get("columns") or {}
        columns.update(layer_columns)
        if set(layer.get("columnOrder") or []) != set(layer_columns):
            problems.append(f"{where}: layer {layer_id} columnOrder does not list exactly its columns")
        for column in layer_columns.values():
            operation, field = column.get("operationType"), column.get("sourceField")
            name = f"{where} column {column.get('label')!r}"
            if field == RECORDS:
                if operation != "count":
                    problems.append(f"{name}: {RECORDS} only counts")
            elif field is not None:
                if field not in fields:
                    problems.append(f"{name}: field {field!r} is not in its data view's mappings")
                elif operation in OPERATION_TYPES and fields[field] not in OPERATION_TYPES[operation]:
                    problems.append(f"{name}: {operation} of {field!r}, a {fields[field]} field")
            check_kql(name, column.get("filter"), fields)
            order = ((column.get("params") or {}).get("orderBy") or {}).get("columnId")
            if order is not None and order not in layer_columns:
                problems.append(f"{name}: orders by {order}, not a column of the layer")
        check_kql(where, state.get("query"), fields)
    visualization = state.get("visualization") or {}
    accessors = []
    for layer in visualization.get("layers") or [visualization]:
        accessors += [layer.get("xAccessor"), layer.get("splitAccessor"), *(layer.get("accessors") or [])]
        accessors += [c.get("columnId") for c in layer.get("columns") or []]
        accessors += [layer.get("metricAccessor")]
    for accessor in accessors:
        if accessor is not None and accessor not in columns:
            problems.append(f"{where}: the visualization shows {accessor}, not a column")


def _dashboard(problems: list[str], where: str, obj: dict[str, Any]) -> None:
    attributes = obj["attributes"]
    for key in ("optionsJSON",):
        _json_attribute(problems, f"{where} {key}", attributes.get(key, "{}"))
    meta = attributes.get("kibanaSavedObjectMeta") or {}
    _json_attribute(problems, f"{where} searchSourceJSON", meta.get("searchSourceJSON", "{}"))
    panels = _json_attribute(problems, f"{where} panelsJSON", attributes.get("panelsJSON"))
    if not isinstance(panels, list) or not panels:
        problems.append(f"{where}: panelsJSON is not a list of panels")
        return
    references = {r.get("name"): r for r in obj["references"]}
    placed: list[tuple[str, dict[str, int]]] = []
    indexes = [p.get("panelIndex") for p in panels]
    if len(set(indexes)) != len(indexes) or not all(indexes):
        problems.append(f"{where}: panels need distinct panelIndex values")
    for panel in panels:
        name = f"{where} panel {panel.get('panelIndex')}"
        grid = panel.get("gridData") or {}
        integers = all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h"))
        if not integers or grid.get("i") != panel.get("panelIndex"):
            problems.append(f"{name}: gridData needs integer x, y, w, h and i = panelIndex")
            continue
        if grid["x"] < 0 or grid["x"] + grid["w"] > KIBANA_WIDTH:
            problems.append(f"{name}: gridData {grid} outside the {KIBANA_WIDTH}-column grid")
        problems.extend(f"{name} overlaps {other}" for other, at in placed if _overlaps(grid, at))
        placed.append((name, grid))
        if "panelRefName" in panel:
            reference = references.get(f"{panel['panelIndex']}:{panel['panelRefName']}")
            if reference is None:
                problems.append(f"{name}: no reference {panel['panelIndex']}:{panel['panelRefName']}")
            elif reference.get("type") != panel.get("type"):
                problems.append(f"{name}: a {panel.get('type')} panel referencing a {reference.get('type')}")
        elif "attributes" not in (panel.get("embeddableConfig") or {}):
            problems.append(f"{name}: neither a reference nor a panel by value")


# --- Datadog ------------------------------------------------------------------------------------------

LOG_RESERVED = {"source", "service", "host"}  # set by the sink: ddsource, service, hostname
LIST_STREAM_COLUMNS = {"timestamp", "host", "service", "status_line", "content", "stream"}
METRIC_QUERY = re.compile(
    r"(?P<aggregation>avg|max|min|sum):(?P<metric>[\w.]+)\{(?P<filters>[^}]*)\}(?:\s+by\s+\{(?P<by>[^}]*)\})?"
)
SEARCH_TERM = re.compile(r'-?(?P<key>@?[\w.\-]+):(?P<value>"[^"]*"|\([^)]*\)|[^\s()]+)|\$(?P<variable>\w+)')


def sample_records(stream: str) -> list[dict[str, Any]]:
    """Records as ``store.export_streams.read_page`` hands them to sinks, every optional field set."""
    common = {"organization_id": "org_1", "project_id": "prj_1"}
    if stream == "inference_logs":
        return [{
            **common, "id": 1, "record_id": "inf_1", "model": "churn", "model_version": "3",
            "timestamp": "2026-11-01T00:00:00.000000Z", "request_id": "req-1", "features": {"tenure": 3},
            "prediction": "stay", "label": "stay", "latency_ms": 12.5, "ingested_at": "2026-11-01T00:00:01.000000Z",
        }]
    if stream == "drift_metrics":
        return [{
            **common, "id": n, "record_id": f"drm_{n}", "check_id": "chk_1", "model": "churn", "model_version": "3",
            "feature": "tenure", "method": method, "value": 0.3, "threshold": 0.2, "drifted": True, "p_value": None,
            "reference_from": "2026-10-01T00:00:00.000000Z", "reference_to": "2026-10-31T00:00:00.000000Z",
            "current_from": "2026-10-31T00:00:00.000000Z", "current_to": "2026-11-01T00:00:00.000000Z",
            "computed_at": "2026-11-01T00:00:00.000000Z",
        } for n, method in enumerate(DEFAULT_THRESHOLDS, start=1)]
    return [{
        **common, "id": f"evt_{n}", "record_id": f"evt_{n}", "type": entry.type,
        "data": {"model": "churn", **entry.example},
        "timestamp": "2026-11-01T00:00:00.000000Z", "dispatched_at": None, "published_at": None,
    } for n, entry in enumerate(CATALOG, start=1)]


@dataclass(frozen=True)
class DatadogVocabulary:
    """What the Datadog sink sends: log sources, attributes and tag keys; metric names and tag keys;
    event sources and tag keys."""

    log_sources: frozenset[str]
    log_attributes: frozenset[str]  # "@modelpulse.latency_ms", ...
    log_tags: frozenset[str]
    metrics: frozenset[str]
    metric_tags: frozenset[str]
    event_sources: frozenset[str]
    event_tags: frozenset[str]


def _tag_keys(tags: list[str]) -> set[str]:
    return {tag.partition(":")[0] for tag in tags}


@cache
def datadog_vocabulary() -> DatadogVocabulary:
    """Read from the bodies ``tasks.sinks.datadog`` builds for sample records of every stream."""
    logs, series, events = [], [], []
    for stream in ("inference_logs", "events"):
        for record in sample_records(stream):
            if stream == "events" and record["type"] in EVENT_TYPES_AS_EVENTS:
                events.append(json.loads(event_body(stream, record)))
            else:
                logs.append(json.loads(log_entry("modelpulse", stream, record)))
    series = [json.loads(series_entry("drift_metrics", record)) for record in sample_records("drift_metrics")]
    attributes: set[str] = set()
    for entry in logs:
        _flatten({k: v for k, v in entry.items() if isinstance(v, dict)}, "@", attributes)
    return DatadogVocabulary(
        log_sources=frozenset(entry["ddsource"] for entry in logs),
        log_attributes=frozenset(attributes),
        log_tags=frozenset(set().union(*(_tag_keys(e["ddtags"].split(",")) for e in logs))),
        metrics=frozenset(s["metric"] for s in series),
        metric_tags=frozenset(set().union(*(_tag_keys(s["tags"]) for s in series))),
        event_sources=frozenset(e["source_type_name"] for e in events),
        event_tags=frozenset(set().union(*(_tag_keys(e["tags"]) for e in events))),
    )


def datadog_model_problems(dashboard: dict[str, Any]) -> list[str]:
    """What the official client's ``Dashboard`` model cannot read: a part it leaves unparsed (a wrong
    type or enum value, a widget no definition matches) or a key no model declares."""
    problems: list[str] = []
    configuration = Configuration()
    try:
        parsed = ApiClient(configuration).deserialize(json.dumps(dashboard), (Dashboard,), True)
    except Exception as error:  # the client raises its own ApiTypeError/ApiValueError family
        return [f"the client's Dashboard model refuses it: {error}"]

    def explain(composed: type, data: dict[str, Any], path: str) -> None:
        """Why ``data`` matched none of ``composed``'s oneOf models: build the one its ``type`` names
        and report what fails inside it (or that no model has that ``type``)."""
        named = [
            option for option in composed._composed_schemas.get("oneOf", ())
            if isinstance(option, type) and any(
                isinstance(kind, type) and issubclass(kind, ModelSimple)
                and data.get("type") in getattr(kind, "allowed_values", ())
                for kind in (getattr(option, "openapi_types", None) or {}).get("type", ())
            )
        ]
        if len(named) != 1:
            problems.append(f"{path}: matches no model of the Datadog API (type {data.get('type')!r})")
            return
        try:
            instance = named[0](
                **change_keys_js_to_python(data, named[0]),
                _spec_property_naming=True, _check_type=True, _configuration=configuration,
            )
        except Exception as error:
            problems.append(f"{path}: {named[0].__name__}: {error}")
            return
        found = len(problems)
        walk(instance, path)
        if len(problems) == found:
            problems.append(f"{path}: matches no model of the Datadog API")

    def walk(value: Any, path: str) -> None:
        if isinstance(value, UnparsedObject):
            problems.append(f"{path}: matches no model of the Datadog API (e.g. a wrong type or value)")
        elif isinstance(value, ModelComposed):
            for instance in value._composed_instances:
                if isinstance(instance, UnparsedObject) and isinstance(instance._data_store, dict):
                    explain(type(value), instance._data_store, path)
                else:
                    walk(instance, path)
        elif isinstance(value, ModelSimple):
            if value._unparsed:
                allowed = sorted(getattr(value, "allowed_values", ()))
                problems.append(f"{path}: {value.value!r} is not one of {allowed} ({type(value).__name__})")
        elif isinstance(value, OpenApiModel):
            if value._unparsed and not any(isinstance(v, (OpenApiModel, list)) for v in value._data_store.values()):
                problems.append(f"{path}: {type(value).__name__} left unparsed")
            for key, inner in value._data_store.items():
                if key not in value.attribute_map:
                    problems.append(f"{path}.{key}: not a property of {type(value).__name__}")
                walk(inner, f"{path}.{key}")
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{path}[{index}]")

    walk(parsed, "$")
    if getattr(parsed, "_unparsed", False) and not problems:
        problems.append("$: the Dashboard model left part of it unparsed")
    return problems


def datadog_reference_problems(dashboard: dict[str, Any]) -> list[str]:
    """Every metric, tag key, log attribute, source and template variable the queries name, against
    what the Datadog sink sends (`datadog_vocabulary`)."""
    vocabulary = datadog_vocabulary()
    problems: list[str] = []
    variables = {}
    for variable in dashboard.get("template_variables") or []:
        variables[variable.get("name")] = variable.get("prefix")
        if variable.get("prefix") not in vocabulary.log_tags | vocabulary.metric_tags | vocabulary.event_tags:
            name, prefix = variable.get("name"), variable.get("prefix")
            problems.append(f"template variable {name}: prefix {prefix!r} is no tag the sink sends")

    def check_variable(where: str, name: str, tags: frozenset[str]) -> None:
        if name not in variables:
            problems.append(f"{where}: ${name} is not a template variable")
        elif variables[name] not in tags:
            problems.append(f"{where}: ${name} filters on {variables[name]!r}, a tag this data does not carry")

    def check_search(where: str, query: str, kind: str) -> None:
        tags = vocabulary.log_tags if kind == "logs" else vocabulary.event_tags
        sources = vocabulary.log_sources if kind == "logs" else vocabulary.event_sources
        for match in SEARCH_TERM.finditer(query):
            if match["variable"]:
                check_variable(where, match["variable"], tags)
                continue
            key, value = match["key"], match["value"].strip('"')
            if key == "source":
                if value not in sources:
                    problems.append(f"{where}: source:{value} is not the source the sink sets {sorted(sources)}")
            elif key.startswith("@"):
                if kind != "logs" or key not in vocabulary.log_attributes:
                    problems.append(f"{where}: {key} is not an attribute the sink sends with {kind}")
            elif not (kind == "logs" and key in LOG_RESERVED) and key not in tags:
                problems.append(f"{where}: {key}: is not a tag the sink sends with {kind}")

    def check_facet(where: str, facet: str, kind: str) -> None:
        if facet.startswith("@"):
            if kind != "logs" or facet not in vocabulary.log_attributes:
                problems.append(f"{where}: {facet} is not an attribute the sink sends with {kind}")
        elif facet not in (vocabulary.log_tags | LOG_RESERVED if kind == "logs" else vocabulary.event_tags):
            problems.append(f"{where}: {facet} is not a tag the sink sends with {kind}")

    def check_metric(where: str, query: str) -> None:
        match = METRIC_QUERY.fullmatch(query.strip())
        if not match:
            problems.append(f"{where}: cannot read metric query {query!r}")
            return
        if match["metric"] not in vocabulary.metrics:
            problems.append(f"{where}: {match['metric']} is not a metric the sink sends {sorted(vocabulary.metrics)}")
        for item in filter(None, (i.strip() for i in match["filters"].split(","))):
            if item.startswith("$"):
                check_variable(where, item[1:], vocabulary.metric_tags)
            elif item != "*" and item.lstrip("!").partition(":")[0] not in vocabulary.metric_tags:
                problems.append(f"{where}: {item} filters on a tag the sink does not send with {match['metric']}")
        for key in filter(None, (k.strip() for k in (match["by"] or "").split(","))):
            if key not in vocabulary.metric_tags:
                problems.append(f"{where}: by {{{key}}}: not a tag the sink sends with {match['metric']}")

    def walk(value: Any, path: str) -> None:
        if isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{path}[{index}]")
            return
        if not isinstance(value, dict):
            return
        source = value.get("data_source")
        if "q" in value and isinstance(value["q"], str):
            check_metric(path, value["q"])
        if source == "metrics":
            check_metric(path, value.get("query", ""))
        elif source in ("logs", "events"):
            check_search(path, (value.get("search") or {}).get("query", ""), source)
            if (value.get("compute") or {}).get("metric"):
                check_facet(path, value["compute"]["metric"], source)
            for group in value.get("group_by") or []:
                check_facet(path, group.get("facet", ""), source)
        elif source in ("logs_stream", "event_stream"):
            check_search(path, value.get("query_string", ""), "logs" if source == "logs_stream" else "events")
        elif source is not None:
            problems.append(f"{path}: data_source {source!r}: the sink sends only logs, metrics and events")
        for column in value.get("columns") or []:
            field = column.get("field") if isinstance(column, dict) else None
            if field is not None and field not in LIST_STREAM_COLUMNS and field not in vocabulary.log_attributes:
                problems.append(f"{path}: column {field!r}: not a standard column, nor an attribute the sink sends")
        for key, inner in value.items():
            walk(inner, f"{path}.{key}")

    walk(dashboard.get("widgets"), "widgets")
    return problems


def datadog_problems(dashboard: dict[str, Any]) -> list[str]:
    problems = [f"{k}: missing" for k in ("title", "layout_type", "widgets") if k not in dashboard]
    return problems + datadog_model_problems(dashboard) + datadog_reference_problems(dashboard)
