"""Sinks that never answer, or trickle their answer a byte at a time: the run fails with a clear
error within the configured timeouts (and the connection test says so in time), never a hang.

``MODELPULSE_SINK_TIMEOUT_SECONDS`` bounds connecting and each read; a trickle passes every read,
so ``MODELPULSE_SINK_PAGE_DEADLINE_SECONDS`` bounds each attempt at a page as a whole.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.export import export
from store.settings import get_settings
from tests.exports import seed
from tests.exports.test_elasticsearch_export import make_es_export
from tests.support.polling import wait_until

REQUEST_TIMEOUT = 1
PAGE_DEADLINE = 2
SHIP_ATTEMPTS = 4  # the ship-page task's first try and its 3 retries


@pytest.fixture
def short_timeouts(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("MODELPULSE_SINK_TIMEOUT_SECONDS", str(REQUEST_TIMEOUT))
    monkeypatch.setenv("MODELPULSE_SINK_PAGE_DEADLINE_SECONDS", str(PAGE_DEADLINE))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()



def bulk_requests(es) -> int:
    return len([request for request in es.requests if request.path.endswith("/_bulk")])


def test_an_elasticsearch_that_never_answers_fails_the_run_with_a_clear_error(org_id, es, short_timeouts):
    seed.inference_logs(org_id, 5)
    export_id = make_es_export(org_id, es)
    es.script(*["hang"] * 10)

    with pytest.raises(Exception, match="did not answer within"):
        export(export_id)

    run = seed.only_run(export_id)
    assert run.status == "failed"
    assert run.error == f"SinkUnavailable: Elasticsearch at {es.url} did not answer within {REQUEST_TIMEOUT} s"
    assert seed.watermark(export_id) is None
    # One request per attempt, each given up on after the read timeout (not retried by the client).
    assert bulk_requests(es) == SHIP_ATTEMPTS
    wait_until(lambda: es.abandoned == SHIP_ATTEMPTS, 5, "the fake to notice every abandoned attempt")


def test_an_elasticsearch_that_trickles_is_cut_off_at_the_page_deadline(org_id, es, short_timeouts):
    seed.inference_logs(org_id, 5)
    export_id = make_es_export(org_id, es)
    es.trickle_interval = 0.2  # every read arrives well inside the read timeout
    es.script(*["trickle"] * 10)

    with pytest.raises(Exception, match="over one page"):
        export(export_id)

    run = seed.only_run(export_id)
    assert run.status == "failed"
    assert run.error == (
        f"SinkUnavailable: the elasticsearch sink took more than {PAGE_DEADLINE} s over one page "
        "(MODELPULSE_SINK_PAGE_DEADLINE_SECONDS); it answers too slowly or not completely"
    )
    assert seed.watermark(export_id) is None
    # Each attempt was interrupted mid-answer and hung up: nothing keeps trickling in the background.
    assert bulk_requests(es) == SHIP_ATTEMPTS
    wait_until(lambda: es.abandoned == SHIP_ATTEMPTS, 5, "the fake to notice every abandoned attempt")


def test_connection_tests_of_sinks_that_hang_or_trickle_answer_in_time(api, org_id, es, hec, datadog, short_timeouts):
    api.application.config["SINK_CHECK_DEADLINE_SECONDS"] = 3
    base = f"/organizations/{org_id}/exports"
    splunk = api.post(base, json={
        "name": "splunk", "type": "splunk", "config": {"hec_url": hec.url},
        "credentials": {"hec_token": "hec-secret-token-91bd"},
    }).json["id"]
    kibana = api.post(base, json={
        "name": "kibana", "type": "elasticsearch", "config": {"url": es.url},
        "credentials": {"username": "elastic", "password": "es-secret-pw-7f3a"},
    }).json["id"]
    dd = api.post(base, json={
        "name": "dd", "type": "datadog", "config": {"api_url": datadog.url},
        "credentials": {"api_key": "dd-secret-api-key-c0ffee", "app_key": "app"},
    }).json["id"]  # fmt: skip

    hec.script("hang", any_request=True)
    hanging = api.post(f"{base}/{splunk}/test")
    es.trickle_interval = 0.5
    es.script("trickle", any_request=True)
    trickling = api.post(f"{base}/{kibana}/test")
    # urllib3 itself retries a GET that timed out (3 times): the deadline ends it first.
    datadog.script(*["hang"] * 4, any_request=True)
    silent = api.post(f"{base}/{dd}/test")

    assert hanging.status_code == 200 and hanging.json["ok"] is False
    assert hanging.json["checks"] == [
        {"name": "reachable", "ok": False, "detail": f"{hec.url} did not answer within {REQUEST_TIMEOUT} s"}
    ]
    assert trickling.status_code == 200 and trickling.json["ok"] is False
    assert trickling.json["checks"] == [{"name": "reachable", "ok": False, "detail": "no complete answer within 3 s"}]
    wait_until(lambda: es.abandoned == 1, 5, "the trickled check to be stopped, not left running")
    assert silent.status_code == 200 and silent.json["ok"] is False
    assert silent.json["checks"] == [{"name": "reachable", "ok": False, "detail": "no complete answer within 3 s"}]
