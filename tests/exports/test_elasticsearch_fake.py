"""The Elasticsearch fake refuses what Elasticsearch refuses, spoken to by the official client.

The sink's tests trust the fake to catch a wrong op type, a template that loses to a built-in one,
or a mapping conflict; these tests hold the fake to that.
"""

from __future__ import annotations

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from tests.fakes.elasticsearch import DATA_STREAM_OPS_ONLY, ElasticsearchFake

TEMPLATE = {
    "index_patterns": ["mp-stream"],
    "priority": 200,
    "data_stream": {},
    "template": {
        "mappings": {
            "date_detection": False,
            "properties": {
                "@timestamp": {"type": "date"},
                "modelpulse": {"properties": {"value": {"type": "double"}, "at": {"type": "date"},
                                              "model": {"type": "keyword"}}},
            },
        }
    },
}
WHEN = "2026-11-01T00:00:00Z"


@pytest.fixture
def client(es: ElasticsearchFake) -> Elasticsearch:
    return Elasticsearch(es.url, basic_auth=("elastic", "es-secret-pw-7f3a"))


def items(answer) -> list[tuple[str, int, str | None]]:
    """(op type, status, error type) per item."""
    out = []
    for item in answer["items"]:
        ((op, info),) = item.items()
        out.append((op, info["status"], (info.get("error") or {}).get("type")))
    return out


def test_a_data_stream_takes_create_only_and_answers_409_for_an_existing_id(client, es):
    client.indices.put_index_template(name="mp", **TEMPLATE)

    refused = client.bulk(operations=[{"index": {"_index": "mp-stream", "_id": "a"}}, {"@timestamp": WHEN}])
    assert items(refused) == [("index", 400, "illegal_argument_exception")]
    assert refused["items"][0]["index"]["error"]["reason"] == DATA_STREAM_OPS_ONLY
    assert es.data_streams() == set(), "a refused write does not create the data stream"

    answer = client.bulk(operations=[
        {"create": {"_index": "mp-stream", "_id": "a"}}, {"@timestamp": WHEN},
        {"create": {"_index": "mp-stream", "_id": "a"}}, {"@timestamp": WHEN},
        {"index": {"_index": "mp-stream", "_id": "b"}}, {"@timestamp": WHEN},
        {"create": {"_index": "mp-stream", "_id": "c"}}, {"modelpulse": {"value": 1}},
    ])

    assert answer["errors"] is True
    assert items(answer) == [
        ("create", 201, None),
        ("create", 409, "version_conflict_engine_exception"),
        ("index", 400, "illegal_argument_exception"),
        ("create", 400, "mapper_parsing_exception"),
    ]
    assert "[@timestamp] is missing" in answer["items"][3]["create"]["error"]["reason"]
    assert es.data_streams() == {"mp-stream"} and es.ids("mp-stream") == {"a"}
    assert client.indices.get_data_stream(name="mp-stream")["data_streams"][0]["template"] == "mp"


def test_template_mappings_and_learnt_types_reject_a_poisoned_document_only(client, es):
    client.indices.put_index_template(name="mp", **TEMPLATE)
    good = {"@timestamp": WHEN, "modelpulse": {"value": 0.5, "at": WHEN, "model": "churn"}, "age": 30}

    answer = client.bulk(index="mp-stream", operations=[
        {"create": {"_id": "1"}}, good,
        {"create": {"_id": "2"}}, {**good, "age": "thirty"},
        {"create": {"_id": "3"}}, {**good, "modelpulse": {"value": "high"}},
        {"create": {"_id": "4"}}, {**good, "modelpulse": {"at": "yesterday"}},
        {"create": {"_id": "5"}}, {**good, "modelpulse": {"model": {"name": "churn"}}},
        {"create": {"_id": "6"}}, {**good, "modelpulse": 7},
        {"create": {"_id": "7"}}, {**good, "age": "31", "modelpulse": {"value": "0.7", "at": 1_700_000_000_000}},
    ])

    assert [status for _, status, _ in items(answer)] == [201, 400, 400, 400, 400, 400, 201]
    reasons = [item["create"].get("error", {}).get("reason", "") for item in answer["items"]]
    assert reasons[1].startswith("failed to parse field [age] of type [long] in document with id '2'")
    assert "[modelpulse.value] of type [double]" in reasons[2]
    assert "[modelpulse.at] of type [date]" in reasons[3]
    assert "[modelpulse.model] of type [keyword]" in reasons[4]
    assert reasons[5].startswith("object mapping for [modelpulse]")
    assert es.ids("mp-stream") == {"1", "7"}
    assert es.field_type("mp-stream", "age") == "long"


def test_a_rejected_document_teaches_the_mapping_nothing(client, es):
    answer = client.bulk(index="plain", operations=[
        {"index": {"_id": "1"}}, {"score": 1, "tag": {"nested": True}},
        {"index": {"_id": "2"}}, {"fresh": 5, "score": "x"},
        {"index": {"_id": "3"}}, {"fresh": "new"},
    ])

    assert [status for _, status, _ in items(answer)] == [201, 400, 201]
    assert es.field_type("plain", "fresh") == "text", "document 2's 'fresh' (a long) was never mapped"
    assert es.targets["plain"].kind == "index"


def test_templates_at_the_same_priority_with_overlapping_patterns_are_refused(client, es):
    with pytest.raises(BadRequestError, match="same priority"):
        client.indices.put_index_template(name="mine", index_patterns=["logs-mp-default"], priority=100,
                                          data_stream={})
    client.indices.put_index_template(name="mine", index_patterns=["logs-mp-default"], priority=200, data_stream={})
    with pytest.raises(BadRequestError, match="No handler for type"):
        client.indices.put_index_template(
            name="typo", index_patterns=["x"], template={"mappings": {"properties": {"a": {"type": "doubel"}}}}
        )
    with pytest.raises(BadRequestError, match=r"\[@timestamp\] is of type \[keyword\]"):
        client.indices.put_index_template(
            name="ts", index_patterns=["y"], data_stream={},
            template={"mappings": {"properties": {"@timestamp": {"type": "keyword"}}}},
        )

    assert client.indices.get_index_template(name="mine")["index_templates"][0]["index_template"]["priority"] == 200
    with pytest.raises(NotFoundError):
        client.indices.get_index_template(name="typo")


def test_ilm_policies_are_validated_and_versioned_only_when_they_change(client, es):
    policy = {"phases": {"hot": {"actions": {"rollover": {"max_age": "1d"}}},
                         "delete": {"min_age": "30d", "actions": {"delete": {}}}}}
    client.ilm.put_lifecycle(name="p", policy=policy)
    client.ilm.put_lifecycle(name="p", policy=policy)
    assert client.ilm.get_lifecycle(name="p")["p"]["version"] == 1
    client.ilm.put_lifecycle(name="p", policy={**policy, "phases": {**policy["phases"], "delete": {
        "min_age": "7d", "actions": {"delete": {}}}}})
    assert client.ilm.get_lifecycle(name="p")["p"]["version"] == 2

    with pytest.raises(BadRequestError, match="does not support phase"):
        client.ilm.put_lifecycle(name="q", policy={"phases": {"lukewarm": {"actions": {}}}})
    with pytest.raises(BadRequestError, match="rollover condition"):
        client.ilm.put_lifecycle(name="q", policy={"phases": {"hot": {"actions": {"rollover": {}}}}})
    with pytest.raises(NotFoundError):
        client.ilm.get_lifecycle(name="q")


def test_filter_path_keeps_only_what_is_asked(client, es):
    answer = client.bulk(
        index="plain",
        operations=[{"index": {"_id": "1"}}, {"a": 1}, {"create": {"_id": "1"}}, {"a": 2}],
        filter_path="errors,items.*.status,items.*.error.type",
    )

    assert answer.body == {"errors": True, "items": [
        {"index": {"status": 201}}, {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
    ]}
