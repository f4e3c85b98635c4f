"""``GET /metrics`` in one process: the exposition parses, routes are labelled by template, the token
guard, events counted once committed, and the gauges read from the database. (Every process of a
machine summed: tests/e2e/test_metrics_across_processes.py; export lag: tests/exports/test_export_metrics.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from store.db import session_scope
from store.events import record_event
from store.ids import new_id
from store.metrics import SERVED
from store.models import Event, utcnow
from store.models.deliveries import Delivery
from store.settings import get_settings
from tasks.webhooks.fanout import _plan_fan_out, undispatched_event_ids
from tasks.webhooks.settings import get_webhook_settings
from tests.support.metrics import Samples, samples_of, value


def scrape(client, **headers) -> Samples:
    """Every sample of a scrape, by name and sorted labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return samples_of(response.get_data(as_text=True))



def test_every_served_name_is_in_a_scrape_with_its_labels(client, org):
    client.get(f"/organizations/{org.id}/webhooks", headers=org.headers)
    samples = scrape(client)
    names = {name for name, _ in samples}
    for name, (kind, labels) in SERVED.items():
        shown = {name + "_count"} if kind == "histogram" else {name}
        if not labels or kind == "gauge" and name != "modelpulse_export_lag_seconds":
            assert shown <= names, name
    served = [labels for name, labels in samples if name == "modelpulse_http_requests_total"
              and dict(labels)["route"] == "/organizations/<organization_id>/webhooks"]
    assert served, "the request above is counted"
    for labels in served:  # other tests in this process may have added series
        assert {label for label, _ in labels} == set(SERVED["modelpulse_http_requests_total"][1])


def test_routes_are_labelled_by_template_never_by_path(client, org):
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/organizations/{org.id}/webhooks", headers=org.headers).status_code == 200
    assert client.get(f"/organizations/{org.id}/webhooks/whk_nope", headers=org.headers).status_code == 404
    assert client.get("/no/such/path/for-anyone").status_code == 404
    after = scrape(client)

    route = "/organizations/<organization_id>/webhooks"
    one = "/organizations/<organization_id>/webhooks/<webhook_id>"
    assert value(after, "modelpulse_http_requests_total", method="GET", route=route, status="200") - value(
        before, "modelpulse_http_requests_total", method="GET", route=route, status="200"
    ) == 3
    assert value(after, "modelpulse_http_requests_total", method="GET", route=one, status="404") - value(
        before, "modelpulse_http_requests_total", method="GET", route=one, status="404"
    ) == 1
    assert value(after, "modelpulse_http_requests_total", method="GET", route="unmatched", status="404") > value(
        before, "modelpulse_http_requests_total", method="GET", route="unmatched", status="404"
    )
    assert value(after, "modelpulse_http_request_seconds_count", method="GET", route=route) - value(
        before, "modelpulse_http_request_seconds_count", method="GET", route=route
    ) == 3
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("modelpulse_http_request")}
    for route_label in routes:
        assert org.id not in route_label and "whk_nope" not in route_label and "for-anyone" not in route_label


def test_the_token_guards_metrics_when_set(client, monkeypatch):
    monkeypatch.setenv("MODELPULSE_METRICS_TOKEN", "scrape-secret-5c1d")
    get_settings.cache_clear()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-secret-5c1d"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.content_type == "application/problem+json"
            assert "scrape-secret-5c1d" not in refused.get_data(as_text=True)
        assert scrape(client, Authorization="Bearer scrape-secret-5c1d")
    finally:
        monkeypatch.delenv("MODELPULSE_METRICS_TOKEN")
        get_settings.cache_clear()
    assert client.get("/metrics").status_code == 200


def test_metrics_need_no_api_key_and_are_not_rate_limited(client, monkeypatch):
    monkeypatch.setenv("MODELPULSE_RATE_LIMIT_PER_MINUTE", "1")
    get_settings.cache_clear()
    try:
        assert [client.get("/metrics").status_code for _ in range(5)] == [200] * 5
    finally:
        get_settings.cache_clear()


def test_events_are_counted_once_committed_and_never_when_rolled_back(client, organization, database_url):
    before = scrape(client)
    for _ in range(4):
        response = client.post(
            f"/organizations/{organization.id}/events",
            json={"type": "drift.detected", "data": {"model": "churn", "metric": "psi", "value": 0.3}},
            headers=organization.headers,
        )
        assert response.status_code == 202, response.get_json()
    with pytest.raises(RuntimeError), session_scope(database_url) as session:
        record_event(session, organization.id, "drift.detected", {"model": "churn", "metric": "psi", "value": 1})
        session.flush()
        raise RuntimeError("the producer's transaction fails")
    after = scrape(client)
    labels = {"organization": organization.id, "type": "drift.detected"}
    assert value(after, "modelpulse_events_accepted_total", **labels) - value(
        before, "modelpulse_events_accepted_total", **labels
    ) == 4


def test_pending_gauges_come_from_the_database(client, organization, database_url):
    with session_scope(database_url) as session:
        session.execute(update(Event).values(dispatched_at=utcnow()))  # what earlier tests left
        session.execute(update(Delivery).values(next_attempt_at=None))
    created = client.post(
        f"/organizations/{organization.id}/webhooks",
        json={"name": "hook", "url": "https://93.184.215.14/hook", "events": ["drift.detected"]},
        headers=organization.headers,
    )
    assert created.status_code == 201, created.get_json()
    with session_scope(database_url) as session:
        for _ in range(3):
            record_event(session, organization.id, "drift.detected", {"model": "m", "metric": "psi", "value": 1})
    samples = scrape(client)
    assert value(samples, "modelpulse_outbox_pending") == 3
    assert value(samples, "modelpulse_webhook_deliveries_pending") == 0
    assert 0 <= value(samples, "modelpulse_webhook_oldest_pending_seconds") < 30

    # Fanned out into three open (leased, not yet sent) deliveries.
    planned = _plan_fan_out(undispatched_event_ids(100, database_url), get_webhook_settings(), database_url)
    assert len(planned) == 3
    samples = scrape(client)
    assert value(samples, "modelpulse_outbox_pending") == 0
    assert value(samples, "modelpulse_webhook_deliveries_pending") == 3

    with session_scope(database_url) as session:
        session.execute(update(Delivery).values(next_attempt_at=None))
    samples = scrape(client)
    assert value(samples, "modelpulse_webhook_deliveries_pending") == 0
    assert value(samples, "modelpulse_webhook_oldest_pending_seconds") == 0


def test_oldest_pending_age_is_the_oldest_events_age(client, organization, database_url):
    with session_scope(database_url) as session:
        session.execute(update(Event).values(dispatched_at=utcnow()))
        session.execute(update(Delivery).values(next_attempt_at=None))
        record_event(session, organization.id, "drift.detected", {"model": "m", "metric": "psi", "value": 1},
                     event_id=new_id("evt", utcnow() - timedelta(minutes=10)))
    samples = scrape(client)
    assert 595 < value(samples, "modelpulse_webhook_oldest_pending_seconds") < 660
