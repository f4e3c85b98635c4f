"""Episodes end: threshold.resolved and drift.resolved, once per episode, naming the event that opened it.

Every event the rules emit here is also checked against its type's schema in the catalog (what
``GET .../event-types`` publishes and ``POST .../events`` enforces).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from store.db import session_scope
from store.drift import create_drift_check
from store.event_catalog import BY_TYPE
from tests.monitoring.conftest import REFERENCE, T0, make_records
from tests.monitoring.test_drift_api import events_of, ingest

ORG = "/organizations/acme"
SHIFTED_HOURS = (2, 3, 6)


def window(hour: int) -> dict[str, str]:
    return {"from": (T0 + timedelta(hours=hour)).isoformat(), "to": (T0 + timedelta(hours=hour + 1)).isoformat()}


def ingest_hours(client, headers, hours=range(2, 8)) -> None:
    ingest(client, headers, make_records("churn", T0, 300, seed=10))
    for hour in hours:
        shift = 1.0 if hour in SHIFTED_HOURS else 0.0
        ingest(client, headers, make_records("churn", T0 + timedelta(hours=hour), 300, shift=shift, seed=hour))


def check(client, headers, hour: int) -> bool:
    body = {"model": "churn", "reference": REFERENCE, "current": window(hour), "method": "psi", "features": ["x"]}
    return client.post(f"{ORG}/drift-checks", json=body, headers=headers).json["drifted"]


def valid(events) -> list[dict]:
    """The events' data, each validated against its type's schema in the catalog."""
    for event in events:
        BY_TYPE[event.type].data.model_validate(event.data)
    return [event.data for event in events]


def test_a_threshold_episode_ends_once_with_threshold_resolved_naming_its_breach(flow_client, org, flows_database):
    client = flow_client
    ingest_hours(client, org.headers)
    rule = {"model": "churn", "metric": "drift.psi", "operator": ">", "value": 0.2, "severity": "warning"}
    threshold = client.post(f"{ORG}/thresholds", json=rule, headers=org.headers).json

    assert [check(client, org.headers, hour) for hour in (2, 3, 4, 5, 6)] == [True, True, False, False, True]

    breaches = valid(events_of(flows_database, "threshold.breached"))
    resolutions = valid(events_of(flows_database, "threshold.resolved"))
    first, second = events_of(flows_database, "threshold.breached")
    assert len(breaches) == 2 and breaches[0]["severity"] == "warning"
    (resolved,) = resolutions  # hours 2-3 breached, 4 resolved (5 stays quiet), 6 breaches again
    assert resolved["episode_event_id"] == first.id
    assert resolved["reason"] == "recovered" and resolved["value"] <= 0.2
    assert resolved["threshold_id"] == threshold["id"] and resolved["metric"] == "drift.psi"
    assert resolved["breached_at"] is not None and resolved["check_id"]
    state = client.get(f"{ORG}/thresholds/{threshold['id']}", headers=org.headers).json["states"][0]
    assert state["breached"] and state["episode_event_id"] == second.id

    # Changing the rule ends the episode in progress; so does deleting it (here, nothing is open).
    replaced = client.put(f"{ORG}/thresholds/{threshold['id']}", json={**rule, "value": 0.5}, headers=org.headers)
    assert replaced.status_code == 200 and replaced.json["states"] == []
    changed = valid(events_of(flows_database, "threshold.resolved"))[1]
    assert (changed["reason"], changed["episode_event_id"], changed["value"]) == ("threshold_changed", second.id, None)
    assert changed["threshold"] == 0.2  # the rule as it was during the episode
    assert client.delete(f"{ORG}/thresholds/{threshold['id']}", headers=org.headers).status_code == 204
    assert len(events_of(flows_database, "threshold.resolved")) == 2


def test_deleting_a_breached_threshold_resolves_its_episode(flow_client, org, flows_database):
    client = flow_client
    ingest_hours(client, org.headers, hours=[2])
    rule = {"model": "churn", "metric": "drift.psi", "operator": ">", "value": 0.2}
    threshold = client.post(f"{ORG}/thresholds", json=rule, headers=org.headers).json
    assert check(client, org.headers, 2)
    (breach,) = events_of(flows_database, "threshold.breached")
    assert client.delete(f"{ORG}/thresholds/{threshold['id']}", headers=org.headers).status_code == 204
    (resolved,) = valid(events_of(flows_database, "threshold.resolved"))
    assert (resolved["reason"], resolved["episode_event_id"]) == ("threshold_deleted", breach.id)


def test_a_monitors_drift_episode_is_named_by_its_first_event_and_ends_with_drift_resolved(
    flow_client, org, flows_database
):
    from flows.detect_drift import detect_drift

    client = flow_client
    ingest_hours(client, org.headers)
    body = {
        "reference": REFERENCE,
        "window_seconds": 3600,
        "method": "psi",
        "features": ["x"],
        "schedule": {"interval_seconds": 3600},
    }
    monitor = client.put(f"{ORG}/models/churn/monitor", json=body, headers=org.headers).json

    def monitor_check(hour: int) -> bool:
        with session_scope(flows_database) as session:
            check_id = create_drift_check(
                session,
                "acme",
                model="churn",
                method="psi",
                features=["x"],
                monitor_id=monitor["id"],
                reference_from=T0,
                reference_to=T0 + timedelta(hours=1),
                current_from=T0 + timedelta(hours=hour),
                current_to=T0 + timedelta(hours=hour + 1),
            ).id
        return asyncio.run(detect_drift(check_id))["drifted"]

    assert [monitor_check(hour) for hour in (2, 3, 4, 5, 6)] == [True, True, False, False, True]
    detected = events_of(flows_database, "drift.detected")
    data = valid(detected)
    assert [d["episode_event_id"] for d in data] == [detected[0].id, detected[0].id, detected[2].id]
    assert {d["monitor_id"] for d in data} == {monitor["id"]}
    (resolved,) = valid(events_of(flows_database, "drift.resolved"))
    assert resolved["episode_event_id"] == detected[0].id and resolved["reason"] == "recovered"
    assert resolved["monitor_id"] == monitor["id"] and resolved["drifting_since"]
    current = client.get(f"{ORG}/models/churn/monitor", headers=org.headers).json
    assert current["drift_episode_event_id"] == detected[2].id

    # An ad-hoc check (no monitor) is no episode of the monitor's.
    assert check(client, org.headers, 4) is False
    assert len(events_of(flows_database, "drift.resolved")) == 1

    assert client.delete(f"{ORG}/models/churn/monitor", headers=org.headers).status_code == 204
    _, ended = valid(events_of(flows_database, "drift.resolved"))
    assert (ended["reason"], ended["episode_event_id"]) == ("monitor_deleted", detected[2].id)


def test_disabling_a_drifting_monitor_ends_its_episode(flow_client, org, flows_database):
    from flows.detect_drift import detect_drift

    client = flow_client
    ingest_hours(client, org.headers, hours=[2])
    body = {
        "reference": REFERENCE,
        "window_seconds": 3600,
        "method": "psi",
        "features": ["x"],
        "schedule": {"interval_seconds": 3600},
    }
    monitor = client.put(f"{ORG}/models/churn/monitor", json=body, headers=org.headers).json
    with session_scope(flows_database) as session:
        check_id = create_drift_check(
            session,
            "acme",
            model="churn",
            method="psi",
            features=["x"],
            monitor_id=monitor["id"],
            reference_from=T0,
            reference_to=T0 + timedelta(hours=1),
            current_from=T0 + timedelta(hours=2),
            current_to=T0 + timedelta(hours=3),
        ).id
    assert asyncio.run(detect_drift(check_id))["drifted"]
    disabled = client.put(f"{ORG}/models/churn/monitor", json={**body, "enabled": False}, headers=org.headers)
    assert disabled.status_code == 200 and disabled.json["drift_episode_event_id"] is None
    (resolved,) = valid(events_of(flows_database, "drift.resolved"))
    assert resolved["reason"] == "monitor_disabled"
    assert client.put(f"{ORG}/models/churn/monitor", json={**body, "enabled": False}, headers=org.headers)
    assert len(events_of(flows_database, "drift.resolved")) == 1


def test_log_threshold_events_fit_the_catalog(flow_client, org, flows_database):
    from store.models import utcnow
    from tasks.monitoring.thresholds import evaluate_log_thresholds

    client = flow_client
    now = utcnow()
    ingest(client, org.headers, make_records("api", now - timedelta(minutes=30), 50, latency_ms=250.0))
    body = {"model": "api", "metric": "latency_ms.p95", "operator": ">", "value": 100, "window_seconds": 3600}
    assert client.post(f"{ORG}/thresholds", json=body, headers=org.headers).status_code == 201
    evaluate_log_thresholds.fn(now)
    evaluate_log_thresholds.fn(now + timedelta(hours=2))  # the window holds no logs: not evaluated
    ingest(client, org.headers, make_records("api", now + timedelta(hours=3), 50, latency_ms=20.0))
    evaluate_log_thresholds.fn(now + timedelta(hours=3, minutes=55))
    (breach,) = events_of(flows_database, "threshold.breached")
    (resolved,) = valid(events_of(flows_database, "threshold.resolved"))
    valid([breach])
    assert resolved["episode_event_id"] == breach.id and resolved["value"] == 20.0
    assert resolved["window"]["to"] == (now + timedelta(hours=3, minutes=55)).isoformat()
