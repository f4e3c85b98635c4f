"""The export pipeline: pages overlap on the wire, yet watermarks only pass acknowledged pages."""

from __future__ import annotations

import pytest

from flows.export import export
from tests.exports import seed

LOGS = "modelpulse-inference-logs"


def es_export(org_id, es, **config):
    return seed.export(
        org_id,
        "elasticsearch",
        {"url": es.url, "page_size": 10, **config},
        {"username": "elastic", "password": "es-secret-pw-7f3a"},
        streams=("inference_logs",),
    )


def test_pages_are_in_flight_together_up_to_the_export_concurrency(org_id, es):
    seed.inference_logs(org_id, 80)
    es.latency = 0.3  # long enough that a page still in flight meets the next one

    summary = export(es_export(org_id, es, concurrency=3))

    assert summary["streams"]["inference_logs"] == {"shipped": 80, "rejected": 0, "retried": 0}
    assert es.max_in_flight == 3
    assert set(es.index_operations.values()) == {1}


def test_one_page_at_a_time_when_concurrency_is_1(org_id, es):
    seed.inference_logs(org_id, 30)
    es.latency = 0.2

    export(es_export(org_id, es, concurrency=1))

    assert es.max_in_flight == 1 and len(es.ids(LOGS)) == 30


def test_a_failed_page_stops_the_watermark_before_it_and_the_next_run_ships_the_rest(org_id, es):
    seed.inference_logs(org_id, 60)
    export_id = es_export(org_id, es, concurrency=2)
    ids = seed.record_ids(org_id)
    # The third bulk request fails for good (401 is never retried), while the pages around it ship.
    es.script(None, None, 401)

    with pytest.raises(Exception, match="rejected the credentials"):
        export(export_id)

    mark = seed.watermark(export_id)
    acknowledged = [i for i in ids if mark is not None and int(i.removeprefix("inf_")) <= int(mark)]
    assert set(acknowledged) <= es.ids(LOGS), "the watermark passed only records the sink has"
    assert len(acknowledged) < 60, "the failed page is still past the watermark"

    summary = export(export_id)

    assert summary["status"] == "completed"
    assert es.ids(LOGS) == set(ids), "nothing lost"
    assert summary["streams"]["inference_logs"]["shipped"] == 60 - len(acknowledged)


def test_page_ends_cut_the_stream_into_pages_of_page_size(org_id):
    from store.db import session_scope
    from store.export_streams import PageQuery, page_ends

    seed.inference_logs(org_id, 25)
    ids = [i.removeprefix("inf_") for i in seed.record_ids(org_id)]

    def ends(page_size, pages, after=None):
        with session_scope() as session:
            return page_ends(session, PageQuery("inference_logs", org_id, after=after), page_size, pages)

    assert ends(10, 16) == [ids[9], ids[19], ids[24]], "the last page holds what is left"
    assert ends(5, 16) == [ids[4], ids[9], ids[14], ids[19], ids[24]], "no empty page after a full one"
    assert ends(10, 2) == [ids[9], ids[19]], "only as many pages as asked"
    assert ends(10, 16, after=ids[19]) == [ids[24]]
    assert ends(10, 16, after=ids[24]) == []
