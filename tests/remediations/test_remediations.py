"""Remediations: the API and its Prefect automation, each ModelPulse event as a Prefect event (published by
the function, and by the real dispatcher process, also after one is killed), and a remediation starting a
real flow run of a served deployment (only for its own organization's events)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.events.clients import get_events_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import update

from api.services.remediations import read_automation
from store.db import session_scope
from store.event_catalog import BY_TYPE
from store.events import event_payload
from store.models import Event, Remediation
from tasks.prefect_events import matching_remediations, prefect_event, prefect_event_id, publish_events
from tests.conftest import ROOT
from tests.support.polling import wait_until
from tests.support.servers import free_port, start_process, stop_process

TEMPLATED = {"model": "{{ event.payload.data.model }}", "organization": "{{ event.payload.organization_id }}"}


def drift_event(model: str, **data) -> dict:
    return {"type": "drift.detected", "data": BY_TYPE["drift.detected"].example | {"model": model} | data}


def remediation_body(deployment: str, **fields) -> dict:
    return {
        "name": "retrain-fraud",
        "on": {"type": "drift.detected", "filter": {"data.model": {"$glob": "fraud-*"}}},
        "deployment": deployment,
        "parameters": TEMPLATED | {"out_dir": "/nonexistent"},
    } | fields


def fields(response) -> list[str]:
    assert response.status_code == 422, response.get_json()
    return [error["field"] for error in response.get_json()["errors"]]


def test_invalid_bodies_are_422_naming_the_field(client, organization, deployment):
    url = f"/organizations/{organization.id}/remediations"

    def post(**changes):
        return client.post(url, json=remediation_body(deployment) | changes, headers=organization.headers)

    assert fields(post(on={"type": "drift.exploded"})) == ["on.type"]
    assert fields(post(on={"type": "drift.detected", "filter": {"data.nope": 1}})) == ["on.filter.data.nope"]
    assert fields(post(on={"type": "threshold.breached", "filter": {"$or": [{"data.value": {"$gt": "x"}}]}})) == [
        "on.filter.$or[0].data.value"
    ]
    assert fields(post(deployment="no-such-flow/no-such-deployment")) == ["deployment"]
    assert fields(post(deployment="not a flow and deployment")) == ["deployment"]
    for control in ("\x00", "\x1f", "\x7f"):  # no URL can carry them to Prefect's lookup by name
        assert fields(post(deployment=f"retrain/on{control}drift")) == ["deployment"]
    assert fields(post(parameters=TEMPLATED | {"out_dir": "/x", "epochs": 3})) == ["parameters.epochs"]
    assert fields(post(parameters={"model": "fraud"})) == ["parameters.organization", "parameters.out_dir"]
    assert fields(post(parameters=TEMPLATED | {"out_dir": "{{ event.payload.data.model "})) == ["parameters.out_dir"]
    with get_client(sync_client=True) as prefect:
        assert not [a for a in prefect.read_automations() if organization.id in a.name]


def test_crud_keeps_one_automation_in_step(client, organization, deployment, database_url):
    url = f"/organizations/{organization.id}/remediations"
    created = client.post(url, json=remediation_body(deployment), headers=organization.headers)
    assert created.status_code == 201, created.get_json()
    remediation = created.get_json()
    assert created.headers["Location"].endswith(f"{url}/{remediation['id']}")
    assert remediation["on"] == {"type": "drift.detected", "filter": {"data.model": {"$glob": "fraud-*"}}}
    assert remediation["parameters"]["model"] == "{{ event.payload.data.model }}"

    with get_client(sync_client=True) as prefect:
        automation = read_automation(prefect, remediation["automation_id"])
        deployment_id = prefect.read_deployment_by_name(deployment).id
    trigger = automation.trigger.model_dump(mode="json")
    assert trigger["expect"] == ["modelpulse.drift.detected"]
    assert trigger["match"] == {
        "prefect.resource.id": [f"modelpulse.model.{organization.id}.*", f"modelpulse.organization.{organization.id}"],
        "modelpulse.organization": organization.id,
    }
    assert trigger["match_related"] == {
        "prefect.resource.id": f"modelpulse.remediation.{remediation['id']}",
        "prefect.resource.role": "remediation",
    }
    (action,) = automation.actions
    assert action.deployment_id == deployment_id
    assert action.parameters["model"] == {"__prefect_kind": "jinja", "template": "{{ event.payload.data.model }}"}
    assert action.parameters["out_dir"] == "/nonexistent"

    duplicate = client.post(url, json=remediation_body(deployment), headers=organization.headers)
    assert duplicate.status_code == 409

    listed = client.get(url, headers=organization.headers).get_json()
    assert [item["id"] for item in listed["items"]] == [remediation["id"]]
    assert client.get(f"{url}/{remediation['id']}", headers=organization.headers).get_json() == remediation

    body = remediation_body(deployment, name="retrain-any", on={"type": "model.registered"})
    replaced = client.put(f"{url}/{remediation['id']}", json=body, headers=organization.headers)
    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["automation_id"] == remediation["automation_id"]
    with get_client(sync_client=True) as prefect:
        automation = read_automation(prefect, remediation["automation_id"])
    assert automation.trigger.model_dump(mode="json")["expect"] == ["modelpulse.model.registered"]

    runs = client.get(f"{url}/{remediation['id']}/runs", headers=organization.headers)
    assert runs.status_code == 200, runs.get_json()
    assert runs.get_json() == {"items": [], "next_cursor": None}

    assert client.delete(f"{url}/{remediation['id']}", headers=organization.headers).status_code == 204
    with get_client(sync_client=True) as prefect:
        assert read_automation(prefect, remediation["automation_id"]) is None
    assert client.get(f"{url}/{remediation['id']}", headers=organization.headers).status_code == 404


def test_another_organizations_remediation_is_404(client, organization, deployment, make_key):
    url = f"/organizations/{organization.id}/remediations"
    remediation = client.post(url, json=remediation_body(deployment), headers=organization.headers).get_json()
    other = {"Authorization": f"Bearer {make_key('other-org')}"}
    theirs = f"/organizations/other-org/remediations/{remediation['id']}"
    assert client.get(f"{url}/{remediation['id']}", headers=other).status_code == 404
    assert client.get(theirs, headers=other).status_code == 404
    assert client.get(f"{theirs}/runs", headers=other).status_code == 404


def test_prefect_down_is_503_and_changes_nothing(client, organization, deployment, database_url):
    from sqlalchemy import func, select

    url = f"/organizations/{organization.id}/remediations"
    remediation = client.post(url, json=remediation_body(deployment), headers=organization.headers).get_json()
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        created = client.post(url, json=remediation_body(deployment, name="other"), headers=organization.headers)
        deleted = client.delete(f"{url}/{remediation['id']}", headers=organization.headers)
    assert created.status_code == 503, created.get_json()
    assert deleted.status_code == 503, deleted.get_json()
    with session_scope(database_url) as session:
        count = session.scalar(
            select(func.count()).select_from(Remediation).where(Remediation.organization_id == organization.id)
        )
    assert count == 1
    with get_client(sync_client=True) as prefect:
        assert read_automation(prefect, remediation["automation_id"]) is not None


def _remediation(id_: str, organization_id: str, on: dict) -> Remediation:
    return Remediation(
        id=id_, organization_id=organization_id, name=id_, on=on, deployment="f/d", parameters={},
        automation_id="0", updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_the_publisher_names_the_remediations_an_event_matches_with_every_operator():
    breach = "threshold.breached"
    remediations = [
        _remediation("rem_glob", "acme", {"type": breach, "filter": {"data.model": {"$glob": "fraud-*"}}}),
        _remediation("rem_gte", "acme", {"type": breach, "filter": {"data.severity": {"$gte": "error"}}}),
        _remediation("rem_gt", "acme", {"type": breach, "filter": {"data.value": {"$gt": 1000}}}),
        _remediation("rem_exists", "acme", {"type": breach, "filter": {"data.window": {"$exists": True}}}),
        _remediation("rem_any", "acme", {"type": breach, "filter": None}),
        _remediation("rem_drift", "acme", {"type": "drift.detected", "filter": None}),
        _remediation("rem_other_org", "globex", {"type": breach, "filter": None}),
    ]
    envelope = {
        "id": "evt_1", "type": "threshold.breached", "timestamp": "2026-11-02T10:00:00Z",
        "organization_id": "acme", "project_id": None,
        "data": {"model": "fraud-eu", "model_version": "7", "severity": "critical", "value": 12.5},
    }
    assert matching_remediations(remediations, envelope) == ["rem_glob", "rem_gte", "rem_any"]

    event = prefect_event(envelope, datetime(2026, 11, 2, 10, tzinfo=UTC), ["rem_glob"])
    assert event.id == prefect_event_id("evt_1") == prefect_event(envelope, event.occurred).id
    assert event.event == "modelpulse.threshold.breached"
    assert dict(event.resource) == {
        "prefect.resource.id": "modelpulse.model.acme.fraud-eu",
        "prefect.resource.name": "fraud-eu",
        "modelpulse.organization": "acme",
        "modelpulse.model": "fraud-eu",
        "modelpulse.version": "7",
    }
    assert [dict(related) for related in event.related] == [
        {"prefect.resource.id": "modelpulse.remediation.rem_glob", "prefect.resource.role": "remediation",
         "modelpulse.organization": "acme"}
    ]
    assert event.payload == envelope
    operational = prefect_event(
        envelope | {"type": "webhook.disabled", "data": {"webhook_id": "wh_1"}}, event.occurred
    )
    assert operational.resource.id == "modelpulse.organization.acme"


def _read_prefect_events(api_url: str, names: list[str], resource_prefix: str) -> list[dict]:
    body = {
        "filter": {
            "event": {"name": names},
            "resource": {"id_prefix": [resource_prefix]},
            "occurred": {"since": "2020-01-01T00:00:00Z"},
        },
        "limit": 50,
    }
    response = httpx.post(f"{api_url}/events/filter", json=body, timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def _publish(api_url: str, database_url: str) -> int:
    async def publish() -> int:
        async with get_events_client(checkpoint_every=1) as events:
            return await publish_events(events, database_url=database_url)

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return asyncio.run(publish())


@pytest.mark.timeout(180)
def test_every_event_becomes_a_prefect_event(client, organization, database_url, prefect_services_server):
    _publish(prefect_services_server, database_url)  # whatever other tests left
    url = f"/organizations/{organization.id}/events"
    posted = [
        client.post(url, json=drift_event("fraud-eu") | {"project_id": "payments"}, headers=organization.headers),
        # No webhook subscribes to anything here: every event is still emitted.
        client.post(url, json=drift_event("churn"), headers=organization.headers),
    ]
    ids = [response.get_json()["id"] for response in posted]
    assert _publish(prefect_services_server, database_url) == 2
    assert _publish(prefect_services_server, database_url) == 0  # marked published
    with session_scope(database_url) as session:
        assert all(session.get(Event, event_id).published_at is not None for event_id in ids)

    found = wait_until(
        lambda: (
            events := _read_prefect_events(
                prefect_services_server, ["modelpulse.drift.detected"], f"modelpulse.model.{organization.id}."
            )
        )
        and len(events) == 2
        and events,
        30,
        "both events in Prefect's event store",
        every=0.5,
    )
    by_id = {event["payload"]["id"]: event for event in found}
    fraud = by_id[ids[0]]
    assert fraud["id"] == str(prefect_event_id(ids[0]))
    assert fraud["resource"] == {
        "prefect.resource.id": f"modelpulse.model.{organization.id}.fraud-eu",
        "prefect.resource.name": "fraud-eu",
        "modelpulse.organization": organization.id,
        "modelpulse.project": "payments",
        "modelpulse.model": "fraud-eu",
        "modelpulse.version": "3",
    }
    assert set(fraud["payload"]) == {"id", "type", "timestamp", "organization_id", "project_id", "data"}
    assert fraud["payload"]["data"]["model"] == "fraud-eu"
    assert by_id[ids[1]]["payload"]["project_id"] is None


@pytest.mark.timeout(300)
def test_a_remediation_runs_its_deployment_for_its_own_organizations_events_only(
    client, make_key, database_url, prefect_services_server, served_deployment
):
    deployment, out_dir = served_deployment
    acme, globex = "acme-remediation", "globex-remediation"
    headers = {org: {"Authorization": f"Bearer {make_key(org)}"} for org in (acme, globex)}
    _publish(prefect_services_server, database_url)  # whatever other tests left
    with temporary_settings(updates={PREFECT_API_URL: prefect_services_server}):
        body = remediation_body(deployment, parameters=TEMPLATED | {"out_dir": str(out_dir)})
        created = client.post(f"/organizations/{acme}/remediations", json=body, headers=headers[acme])
        assert created.status_code == 201, created.get_json()
        remediation = created.get_json()

        # The same event in both organizations; and one of acme's that its filter turns down.
        client.post(f"/organizations/{globex}/events", json=drift_event("fraud-eu"), headers=headers[globex])
        client.post(f"/organizations/{acme}/events", json=drift_event("churn"), headers=headers[acme])
        client.post(f"/organizations/{acme}/events", json=drift_event("fraud-eu"), headers=headers[acme])
        assert _publish(prefect_services_server, database_url) == 3

        written = wait_until(lambda: list(out_dir.glob("*.json")), 120, "the remediation's flow run", every=0.5)
        runs_url = f"/organizations/{acme}/remediations/{remediation['id']}/runs"
        runs = wait_until(
            lambda: (page := client.get(runs_url, headers=headers[acme]).get_json())["items"]
            and page["items"][0]["state"] == "COMPLETED"
            and page,
            60,
            "the run to complete",
            every=0.5,
        )
        # The same events emitted again (a dispatcher that died before marking them) start nothing more:
        # they are the same Prefect events (same ids), which Prefect's automations have seen.
        with session_scope(database_url) as session:
            session.execute(update(Event).values(published_at=None))
        assert _publish(prefect_services_server, database_url) == 3
        time.sleep(5)  # a bound on waiting for something that must not happen: no second run starts
        with get_client(sync_client=True) as prefect:
            prefect_flow_runs = prefect.read_flow_runs()
    assert [json.loads(path.read_text()) for path in written] == [
        {"model": "fraud-eu", "organization": acme, "reason": "drift"}
    ]
    (run,) = runs["items"]
    assert run["parameters"] == {"model": "fraud-eu", "organization": acme, "out_dir": str(out_dir)}
    assert run["start_time"] and run["end_time"]
    assert runs["next_cursor"] is None
    automation_id = UUID(remediation["automation_id"])
    started = [str(r.id) for r in prefect_flow_runs if r.created_by and r.created_by.id == automation_id]
    assert started == [run["id"]]


def _start_dispatcher(api_url: str, database_url: str, log: Path) -> subprocess.Popen:
    """The real dispatcher (``python -m flows.fan_out``) on ``database_url``, emitting into ``api_url``'s Prefect."""
    env = dict(os.environ) | {
        "PREFECT_API_URL": api_url,
        "MODELPULSE_DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
    }
    return start_process([sys.executable, "-m", "flows.fan_out"], log, env=env, cwd=ROOT)


def _published_at(database_url: str, event_ids: list[str]) -> dict[str, datetime | None]:
    with session_scope(database_url) as session:
        return {event_id: session.get(Event, event_id).published_at for event_id in event_ids}


def _envelopes(database_url: str, event_ids: list[str]) -> dict[str, dict]:
    with session_scope(database_url) as session:
        return {event_id: event_payload(session.get(Event, event_id)) for event_id in event_ids}


@pytest.mark.timeout(300)
def test_the_dispatcher_process_publishes_every_event_and_a_new_one_takes_over_after_sigkill(
    client, organization, database_url, prefect_services_server, tmp_path
):
    """The publisher loop of a real dispatcher against a Prefect server whose event services run: an event
    posted through the API is read back from Prefect's event store as ``modelpulse.<type>`` on the model's
    resource, its payload the envelope webhooks receive. A dispatcher killed with SIGKILL while events are
    unpublished leaves them so (``published_at`` null), and the next dispatcher publishes them, once each."""
    url = f"/organizations/{organization.id}/events"
    resource_prefix = f"modelpulse.model.{organization.id}."
    names = ["modelpulse.drift.detected", "modelpulse.threshold.breached"]

    def post(body: dict) -> str:
        response = client.post(url, json=body, headers=organization.headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    def in_prefect(event_ids: list[str]) -> dict[str, dict] | None:
        found = _read_prefect_events(prefect_services_server, names, resource_prefix)
        by_id = {event["payload"]["id"]: event for event in found}
        return by_id if set(event_ids) <= set(by_id) else None

    first = _start_dispatcher(prefect_services_server, database_url, tmp_path / "dispatcher-1.log")
    second = None
    try:
        drift = post(drift_event("fraud-eu") | {"project_id": "payments"})
        published = lambda: all(_published_at(database_url, [drift]).values())  # noqa: E731
        wait_until(published, 120, "the dispatcher to publish", every=0.2)
        found = wait_until(lambda: in_prefect([drift]), 30, "the event in Prefect's event store", every=0.5)
        event = found[drift]
        assert event["id"] == str(prefect_event_id(drift))
        assert event["event"] == "modelpulse.drift.detected"
        assert event["resource"] == {
            "prefect.resource.id": f"modelpulse.model.{organization.id}.fraud-eu",
            "prefect.resource.name": "fraud-eu",
            "modelpulse.organization": organization.id,
            "modelpulse.project": "payments",
            "modelpulse.model": "fraud-eu",
            "modelpulse.version": "3",
        }
        # The envelope, as webhooks receive it (id, type, timestamp, data, and whose it is).
        envelope = _envelopes(database_url, [drift])[drift]
        assert event["payload"] == envelope
        assert {"id", "type", "timestamp", "data"} <= set(event["payload"])
        assert datetime.fromisoformat(event["occurred"]) == datetime.fromisoformat(envelope["timestamp"])

        # Frozen first, so it cannot publish what comes next; then killed outright.
        os.killpg(first.pid, signal.SIGSTOP)
        breach = {
            "type": "threshold.breached",
            "data": BY_TYPE["threshold.breached"].example | {"model": "fraud-us", "model_version": "12"},
        }
        left = [post(drift_event("fraud-eu")), post(breach)]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        assert _published_at(database_url, left) == dict.fromkeys(left)

        second = _start_dispatcher(prefect_services_server, database_url, tmp_path / "dispatcher-2.log")
        wait_until(lambda: all(_published_at(database_url, left).values()), 120, "the new dispatcher", every=0.2)
        found = wait_until(lambda: in_prefect(left), 30, "the left events in Prefect's event store", every=0.5)
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
    envelopes = _envelopes(database_url, left)
    for event_id in left:
        assert found[event_id]["payload"] == envelopes[event_id]
    assert found[left[1]]["event"] == "modelpulse.threshold.breached"
    assert found[left[1]]["resource"]["prefect.resource.id"] == f"modelpulse.model.{organization.id}.fraud-us"
    assert found[left[1]]["resource"]["modelpulse.version"] == "12"
    # Once each: the new dispatcher did not emit the first event again.
    every = _read_prefect_events(prefect_services_server, names, resource_prefix)
    assert sorted(event["payload"]["id"] for event in every) == sorted([drift, *left])


EMITS = "this dispatcher emits the outbox's events into Prefect"
LEAVES = "another dispatcher emits the outbox's events into Prefect"


@pytest.mark.timeout(300)
def test_of_two_dispatchers_one_emits_events_and_the_other_takes_over_when_it_is_killed(
    client, organization, database_url, prefect_services_server, tmp_path
):
    """Two dispatcher processes on one PostgreSQL database: one holds the publisher role and emits every
    event into Prefect, the other only says so (each had emitted every event, and Prefect's server had
    handled each twice). Killed with SIGKILL, the holder's session ends and the other takes over."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no advisory locks: its dispatchers, one machine's, each emit")
    url = f"/organizations/{organization.id}/events"

    def post() -> str:
        response = client.post(url, json=drift_event("fraud-eu"), headers=organization.headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    logs = [tmp_path / "dispatcher-1.log", tmp_path / "dispatcher-2.log"]
    dispatchers = [_start_dispatcher(prefect_services_server, database_url, log) for log in logs]
    said = lambda index, words: words in logs[index].read_text()  # noqa: E731
    try:
        [holder] = wait_until(
            lambda: [i for i in (0, 1) if said(i, EMITS) and said(1 - i, LEAVES)],
            60, "one dispatcher to take the publisher role, the other to say so", every=0.2,
        )  # fmt: skip
        other = 1 - holder
        before = post()
        wait_until(lambda: all(_published_at(database_url, [before]).values()), 60, "the holder to emit", every=0.2)
        assert not said(other, EMITS)

        os.killpg(dispatchers[holder].pid, signal.SIGKILL)
        dispatchers[holder].wait(30)
        after = post()
        wait_until(lambda: said(other, EMITS), 30, "the other dispatcher to take the role over", every=0.2)
        wait_until(lambda: all(_published_at(database_url, [after]).values()), 60, "the new holder to emit", every=0.2)
    finally:
        for process in dispatchers:
            stop_process(process)
    names, resource = ["modelpulse.drift.detected"], f"modelpulse.model.{organization.id}."
    found = wait_until(
        lambda: {e["payload"]["id"] for e in _read_prefect_events(prefect_services_server, names, resource)}
        >= {before, after} or None,
        30, "both events in Prefect's event store", every=0.5,
    )  # fmt: skip
    assert found
