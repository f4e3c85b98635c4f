"""The webhook filter language (store/event_filters.py): every operator both ways, paths, bounds, errors."""

from __future__ import annotations

import pytest

from store.event_catalog import BY_TYPE
from store.event_filters import MAX_CONDITIONS, FilterInvalid, compile_filter, glob_problem

THRESHOLD_TYPES = ["threshold.breached", "threshold.resolved"]

BREACH = {
    "id": "evt_01jdx3k8v5c8m2y7q4n6t9w0ab",
    "type": "threshold.breached",
    "timestamp": "2026-11-02T10:00:00Z",
    "organization_id": "acme",
    "project_id": "payments",
    "data": {
        "threshold_id": "thr_1",
        "model": "fraud-eu",
        "metric": "latency_ms.p95",
        "operator": ">",
        "threshold": 250.0,
        "value": 812.5,
        "severity": "error",
        "window": {"from": "2026-11-02T09:00:00+00:00", "to": "2026-11-02T10:00:00+00:00"},
        "check_id": None,
    },
}
DRIFT = {
    "id": "evt_2",
    "type": "drift.detected",
    "timestamp": "2026-11-02T10:00:00Z",
    "organization_id": "acme",
    "project_id": None,
    "data": {
        "model": "churn",
        "features": [
            {"feature": "age", "method": "psi", "value": 0.31},
            {"feature": "income", "method": "psi", "value": 0.05},
        ],
    },
}
RECOMMENDATION = {
    "id": "evt_3",
    "type": "recommendation.created",
    "timestamp": "2026-11-02T10:00:00Z",
    "organization_id": "acme",
    "project_id": None,
    "data": {"model": "churn", "kind": "retrain", "reason": "drift", "details": {"features": ["age"], "runs": 3}},
}


def matches(source: dict, event: dict = BREACH, types: list[str] | None = None) -> bool:
    types = types if types is not None else [event["type"]]
    checked = compile_filter(source, types).matches(event)
    # The dispatcher compiles without the catalog: the same filter must decide the same way.
    assert compile_filter(source).matches(event) is checked
    return checked


# --- every operator, true and false -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"data.model": "fraud-eu"}, True),
        ({"data.model": "fraud-us"}, False),
        ({"data.model": {"$eq": "fraud-eu"}}, True),
        ({"data.model": {"$eq": "churn"}}, False),
        ({"data.value": 812.5}, True),
        ({"data.threshold": 250}, True),  # 250 is 250.0
        ({"data.value": 812}, False),
        ({"data.check_id": None}, True),
        ({"data.threshold_id": None}, False),
        ({"data.model": {"$ne": "churn"}}, True),
        ({"data.model": {"$ne": "fraud-eu"}}, False),
        ({"data.model": {"$in": ["churn", "fraud-eu"]}}, True),
        ({"data.model": {"$in": ["churn", "fraud-us"]}}, False),
        ({"data.model": {"$nin": ["churn", "fraud-us"]}}, True),
        ({"data.model": {"$nin": ["churn", "fraud-eu"]}}, False),
        ({"data.value": {"$gt": 800}}, True),
        ({"data.value": {"$gt": 812.5}}, False),
        ({"data.value": {"$gte": 812.5}}, True),
        ({"data.value": {"$gte": 812.6}}, False),
        ({"data.value": {"$lt": 813}}, True),
        ({"data.value": {"$lt": 812.5}}, False),
        ({"data.value": {"$lte": 812.5}}, True),
        ({"data.value": {"$lte": 812}}, False),
        ({"data.value": {"$gt": 250, "$lt": 1000}}, True),  # two operators on one path: both hold
        ({"data.value": {"$gt": 250, "$lt": 500}}, False),
        ({"data.window.from": {"$exists": True}}, True),
        ({"data.feature": {"$exists": True}}, False),
        ({"data.feature": {"$exists": False}}, True),
        ({"data.model": {"$exists": False}}, False),
        ({"data.check_id": {"$exists": True}}, True),  # null is there
        ({"data.model": {"$glob": "fraud-*"}}, True),
        ({"data.model": {"$glob": "churn*"}}, False),
        ({"data.model": {"$glob": "fraud-??"}}, True),
        ({"data.model": {"$glob": "fraud-?"}}, False),
        ({"data.model": {"$glob": "fraud-[a-f]u"}}, True),
        ({"data.model": {"$glob": "fraud-[!e]u"}}, False),
        ({"data.model": {"$glob": "FRAUD-*"}}, False),  # case matters
        ({"data.metric": {"$glob": "latency_ms.*"}}, True),  # a dot is just a character
        ({"type": "threshold.breached"}, True),
        ({"type": {"$glob": "threshold.*"}}, True),
        ({"type": {"$ne": "threshold.breached"}}, False),
        ({"project_id": "payments"}, True),
        ({"project_id": None}, False),
        ({"project_id": {"$in": ["payments", "fraud"]}}, True),
    ],
)
def test_each_operator_holds_or_not(condition, expected):
    assert matches(condition) is expected


@pytest.mark.parametrize(
    ("operator", "operand", "severity", "expected"),
    [
        ("$gte", "error", "error", True),
        ("$gte", "error", "critical", True),
        ("$gte", "error", "warning", False),
        ("$gt", "warning", "error", True),
        ("$gt", "error", "error", False),
        ("$lt", "warning", "info", True),
        ("$lt", "warning", "critical", False),
        ("$lte", "info", "info", True),
        ("$lte", "info", "warning", False),
        ("$gte", "info", "info", True),  # info is the lowest
        ("$gt", "critical", "critical", False),  # critical the highest
    ],
)
def test_severities_compare_by_the_catalogs_order(operator, operand, severity, expected):
    event = BREACH | {"data": BREACH["data"] | {"severity": severity}}
    assert matches({"data.severity": {operator: operand}}, event, THRESHOLD_TYPES) is expected


def test_ordering_never_holds_for_a_value_of_another_kind():
    assert not matches({"data.severity": {"$gte": "info"}}, BREACH | {"data": BREACH["data"] | {"severity": None}})
    assert not matches({"data.value": {"$gt": 0}}, BREACH | {"data": BREACH["data"] | {"value": "812"}})
    assert not matches({"data.value": {"$gt": 0}}, BREACH | {"data": BREACH["data"] | {"value": True}})
    assert not matches({"data.value": 1}, BREACH | {"data": BREACH["data"] | {"value": True}})  # true is not 1


def test_a_missing_path_passes_only_exists_false_ne_and_nin():
    event = BREACH | {"data": {k: v for k, v in BREACH["data"].items() if k != "severity"}}
    assert matches({"data.severity": {"$exists": False}}, event)
    assert matches({"data.severity": {"$ne": "error"}}, event)
    assert matches({"data.severity": {"$nin": ["error", "critical"]}}, event)
    for operator, operand in [
        ("$eq", "error"), ("$eq", None), ("$in", ["error", None]), ("$gt", "info"), ("$gte", "info"),
        ("$lt", "critical"), ("$lte", "critical"), ("$glob", "*"), ("$exists", True),
    ]:  # fmt: skip
        assert not matches({"data.severity": {operator: operand}}, event), operator
    # Through an object that is null or absent, too.
    assert not matches({"data.window.from": {"$glob": "*"}}, BREACH | {"data": BREACH["data"] | {"window": None}})
    assert matches({"data.window.from": {"$exists": False}}, BREACH | {"data": BREACH["data"] | {"window": None}})


def test_a_path_through_a_list_looks_at_every_element():
    assert matches({"data.features.feature": "age"}, DRIFT)
    assert matches({"data.features.feature": {"$in": ["income", "zip"]}}, DRIFT)
    assert not matches({"data.features.feature": "zip"}, DRIFT)
    assert matches({"data.features.value": {"$gte": 0.3}}, DRIFT)
    assert not matches({"data.features.value": {"$gte": 0.5}}, DRIFT)
    assert not matches({"data.features.feature": {"$ne": "age"}}, DRIFT)  # one of them is age
    assert matches({"data.features.feature": {"$nin": ["zip"]}}, DRIFT)
    assert matches({"data.features.p_value": {"$exists": False}}, DRIFT)
    no_features = DRIFT | {"data": {"model": "churn", "features": []}}
    assert matches({"data.features": {"$exists": True}}, no_features)
    assert not matches({"data.features.feature": {"$exists": True}}, no_features)
    # A list at the end of the path: its elements are the values (free-form details).
    assert matches({"data.details.features": "age"}, RECOMMENDATION)
    assert matches({"data.details.runs": {"$gte": 3}}, RECOMMENDATION)
    assert not matches({"data.details.features": {"$glob": "inc*"}}, RECOMMENDATION)


def test_and_or_nest():
    either = {"$or": [{"data.model": "churn"}, {"data.value": {"$gt": 800}}]}
    assert matches(either)
    assert not matches({"$or": [{"data.model": "churn"}, {"data.value": {"$gt": 900}}]})
    assert matches({"$and": [{"data.model": {"$glob": "fraud-*"}}, {"project_id": "payments"}]})
    assert not matches({"$and": [{"data.model": {"$glob": "fraud-*"}}, {"project_id": "fraud"}]})
    # Top-level conditions and $or are ANDed.
    assert matches({"project_id": "payments", **either})
    assert not matches({"project_id": "fraud", **either})
    nested = {"$or": [{"type": "drift.detected"}, {"$and": [{"data.severity": {"$gte": "error"}}, {"$or": [
        {"data.model": "fraud-eu"}, {"data.model": "fraud-us"}]}]}]}  # fmt: skip
    types = ["drift.detected", "threshold.breached"]
    assert matches(nested, BREACH, types) and matches(nested, DRIFT, types)
    assert not matches(nested, BREACH | {"data": BREACH["data"] | {"severity": "warning"}}, types)


def test_an_empty_filter_passes_everything():
    assert matches({}) and matches({}, DRIFT)


# --- checked against the catalog ---------------------------------------------------------------------


def errors_of(source, types=("threshold.breached",)) -> list[tuple[tuple, str]]:
    with pytest.raises(FilterInvalid) as raised:
        compile_filter(source, list(types))
    return raised.value.errors


@pytest.mark.parametrize(
    ("source", "types", "location", "words"),
    [
        ({"data.feature": "age"}, ["model.registered"], ("data.feature",), "no subscribed event type"),
        ({"data.features.feature": "age"}, ["threshold.breached"], ("data.features.feature",), "no subscribed"),
        ({"data.window.start": {"$exists": True}}, ["threshold.breached"], ("data.window.start",), "no subscribed"),
        ({"data.model.name": "x"}, ["threshold.breached"], ("data.model.name",), "no subscribed"),
        ({"severity": "error"}, ["threshold.breached"], ("severity",), "type, project_id or data.<field>"),
        ({"id": "evt_1"}, ["threshold.breached"], ("id",), "type, project_id or data.<field>"),
        ({"type.name": "x"}, ["threshold.breached"], ("type.name",), "unknown path"),
        ({"data..model": "x"}, ["threshold.breached"], ("data..model",), "none of them empty"),
        ({"type": "drift.detected"}, ["threshold.breached"], ("type",), "none of this path's values"),
        ({"data.severity": "fatal"}, ["threshold.breached"], ("data.severity",), "none of this path's values"),
        ({"data.operator": {"$in": [">", "=>"]}}, ["threshold.breached"], ("data.operator",), "[1] '=>'"),
        ({"data.value": "high"}, ["threshold.breached"], ("data.value",), "a string never equals numbers"),
        ({"data.model": 3}, ["threshold.breached"], ("data.model",), "a number never equals strings"),
        ({"data.model": True}, ["threshold.breached"], ("data.model",), "a boolean never equals"),
        ({"data.model": ["a", "b"]}, ["threshold.breached"], ("data.model",), "use $in for several"),
        ({"data.window": {"from": "x"}}, ["threshold.breached"], ("data.window",), "(data.window.from)"),
        ({"data.model": {}}, ["threshold.breached"], ("data.model",), "at least one operator"),
        ({"data.model": {"$regex": "^f"}}, ["threshold.breached"], ("data.model",), "unknown operator $regex"),
        ({"data.model": {"$gt": 3}}, ["threshold.breached"], ("data.model",), "$gt: compares numbers; this path"),
        ({"data.value": {"$lt": "x"}}, ["threshold.breached"], ("data.value",), "severities by name"),
        ({"data.value": {"$gte": "error"}}, ["threshold.breached"], ("data.value",), "only with a severity"),
        ({"data.model": {"$gte": None}}, ["threshold.breached"], ("data.model",), "takes a number"),
        ({"data.value": {"$glob": "8*"}}, ["threshold.breached"], ("data.value",), "$glob: matches strings"),
        ({"data.model": {"$glob": 3}}, ["threshold.breached"], ("data.model",), "non-empty string pattern"),
        ({"data.model": {"$glob": "fraud-[a-"}}, ["threshold.breached"], ("data.model",), "never closed"),
        ({"data.model": {"$glob": "fraud-]"}}, ["threshold.breached"], ("data.model",), "closes no '['"),
        ({"data.model": {"$glob": "[z-a]*"}}, ["threshold.breached"], ("data.model",), "reversed"),
        ({"data.model": {"$in": "fraud"}}, ["threshold.breached"], ("data.model",), "$in: takes a list"),
        ({"data.model": {"$nin": []}}, ["threshold.breached"], ("data.model",), "$nin: takes a list of 1"),
        ({"data.model": {"$in": list(range(101))}}, ["threshold.breached"], ("data.model",), "1 to 100"),
        ({"data.model": {"$exists": "yes"}}, ["threshold.breached"], ("data.model",), "true or false"),
        ({"data.features": "age"}, ["drift.detected"], ("data.features",), "never equals objects or lists"),
        ({"$not": {"data.model": "x"}}, ["threshold.breached"], ("$not",), "is not allowed here"),
        ({"$or": {"data.model": "x"}}, ["threshold.breached"], ("$or",), "non-empty list of filters"),
        ({"$and": []}, ["threshold.breached"], ("$and",), "non-empty list of filters"),
        ({"$or": [{"data.model": "x"}, "y"]}, ["threshold.breached"], ("$or", 1), "non-empty JSON object"),
        ({"$or": [{"data.model": "x"}, {"data.nope": 1}]}, ["threshold.breached"], ("$or", 1, "data.nope"), "no "),
    ],
)
def test_an_invalid_filter_names_the_place(source, types, location, words):
    [(where, message)] = errors_of(source, types)
    assert where == location
    assert words in message, message


def test_a_path_is_valid_when_any_subscribed_type_has_it():
    # data.features is drift.detected's, data.value threshold.breached's: either subscription will do.
    compile_filter({"data.features.feature": "age", "data.value": {"$gt": 1}}, ["drift.detected", "threshold.breached"])
    compile_filter({"data.reason": {"$in": ["recovered", "monitor_deleted"]}}, ["drift.resolved", "threshold.resolved"])
    # Below a free-form object (recommendation.created's details) any path will do.
    compile_filter({"data.details.anything.below": {"$gt": 2}}, ["recommendation.created"])  # free-form
    assert errors_of({"data.reason": "monitor_deleted"}, ["threshold.resolved"])[0][0] == ("data.reason",)


def test_every_subscribable_types_example_passes_a_filter_of_its_own_fields():
    for event_type, entry in BY_TYPE.items():
        if not entry.subscribable:
            continue
        scalars = {f"data.{k}": v for k, v in entry.example.items() if isinstance(v, str | int | float) or v is None}
        envelope = {"type": event_type, "project_id": None, "data": entry.example}
        assert compile_filter(scalars, [event_type]).matches(envelope), event_type


def test_at_most_50_conditions():
    fifty = {"data.model": {"$ne": "a"}, "$or": [{"data.value": {"$gt": i}} for i in range(MAX_CONDITIONS - 1)]}
    assert compile_filter(fifty, ["threshold.breached"]).conditions == MAX_CONDITIONS
    over = {"data.model": {"$ne": "a"}, "$or": [{"data.value": {"$gt": i}} for i in range(MAX_CONDITIONS)]}
    [(where, message)] = errors_of(over)
    assert where == ("$or", MAX_CONDITIONS - 1, "data.value")
    assert "at most 50 conditions; this is condition 51" in message
    # Each operator of an operator object counts.
    [(where, message)] = errors_of({"$or": [{"data.value": {"$gt": 1, "$lt": 9}} for _ in range(26)]})
    assert where == ("$or", 25, "data.value") and "condition 51" in message


def test_at_most_4_levels_deep():
    leaf = {"data.model": "fraud-eu"}
    four = {"$or": [{"$and": [{"$or": [leaf]}]}]}  # levels 1 (top), 2, 3, 4
    assert compile_filter(four, ["threshold.breached"]).matches(BREACH)
    five = {"$or": [{"$and": [{"$or": [{"$and": [leaf]}]}]}]}
    [(where, message)] = errors_of(five)
    assert where == ("$or", 0, "$and", 0, "$or", 0, "$and")
    assert "at most 4 deep" in message


def test_errors_are_bounded_and_all_reported():
    errors = errors_of({"data.a": 1, "data.model": {"$glob": "["}, "data.value": "x"})
    assert [where for where, _ in errors] == [("data.a",), ("data.model",), ("data.value",)]
    assert len(errors_of({f"nope{i}": 1 for i in range(1000)})) <= 50


def test_the_dispatcher_compiles_without_the_catalog_but_still_checks_the_shape():
    # Unknown data fields are fine there (the API already checked the stored filter against its types) ...
    assert compile_filter({"data.anything": {"$gte": 2}}).matches({"data": {"anything": 3}})
    # ... but operators, operands and bounds are still the language's.
    with pytest.raises(FilterInvalid):
        compile_filter({"data.anything": {"$gte": "high"}})
    with pytest.raises(FilterInvalid):
        compile_filter({"data.anything": {"$glob": "a["}})
    with pytest.raises(FilterInvalid):
        compile_filter(["not", "an", "object"])


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("fraud-*", True),
        ("*", True),
        ("model-?", True),
        ("[abc]*", True),
        ("[!abc]*", True),
        ("[]]", True),  # a ']' first in a class is literal
        ("[!]]x", True),
        ("[[]", True),  # a literal '['
        ("a[0-9]", True),
        ("[", False),
        ("a[bc", False),
        ("[]", False),
        ("[!]", False),
        ("a]", False),
        ("[9-0]", False),
        ("x" * 257, False),
    ],
)
def test_glob_patterns(pattern, valid):
    assert (glob_problem(pattern) is None) is valid
