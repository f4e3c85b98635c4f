"""The sweep gate: each sweep's check finds exactly its sweep's work, and the gate starts a due sweep's
deployment once a minute however many gates find it due.

The checks are held against the real sweeps: for each kind of work a sweep does, the work alone makes
the check fire, then the sweep runs (the flow itself, in this process, against the test's database and
Prefect server) and the check must be quiet again. A check that missed some work would leave it to the
ten-minute backstop; one that fired on work its sweep does not take would run the sweep every minute.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
from pydantic import ValidationError
from sqlalchemy import update

from flows.due_sweeps import (
    CHECKS,
    SweepCheck,
    add_monitor_rule_due,
    registry_sync_due,
    retry_sweep_due,
    run_monitors_due,
)
from flows.retry_deliveries import retry_due_deliveries
from flows.run_monitors import run_monitors
from flows.sync_registry import sync_registry
from stack.sweep_gate import SweepGate
from store import db as store_db
from store import throttles
from store.db import session_scope
from store.deliveries import create_deliveries
from store.ids import new_id
from store.models import (
    Delivery,
    Event,
    InboundReceipt,
    InferenceLog,
    Integration,
    Monitor,
    Recommendation,
    Webhook,
    utcnow,
)
from store.settings import Settings, get_settings
from tasks.registry_tasks import record_sync_outcome
from tasks.webhooks.settings import get_webhook_settings
from tests.webhooks.receivers import Receiver

ORG = "acme"


def _forget_cached_settings() -> None:
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()
    store_db.forget_engines()


@pytest.fixture
def sweep_database(database_url, monkeypatch, prefect_server):
    """The test's database as every sweep's (they read it from the settings); loopback receivers allowed."""
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
    _forget_cached_settings()
    yield database_url
    _forget_cached_settings()


def due(check, database_url: str) -> str | None:
    with session_scope(database_url) as session:
        return check(session, utcnow())


def test_no_sweep_is_due_on_a_new_database(sweep_database):
    assert [due(check.finds, sweep_database) for check in CHECKS] == [None] * len(CHECKS)


# --- retry-due-deliveries ---------------------------------------------------------------------------


def _webhook(client, organization, url: str) -> str:
    body = {"name": "hook", "url": url, "events": ["drift.detected"]}
    response = client.post(f"/organizations/{organization.id}/webhooks", json=body, headers=organization.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _event(session, organization_id: str, age: timedelta, dispatched: bool, published: bool) -> Event:
    now = utcnow()
    event = Event(
        id=new_id("evt", at=now - age), organization_id=organization_id, type="drift.detected",
        data={"model": "churn"}, timestamp=now - age, dispatched_at=now - age if dispatched else None,
        published_at=now - age if published else None,
    )  # fmt: skip
    session.add(event)
    session.flush()
    return event


def _expired_lease(session, organization_id: str, webhook_id: str) -> None:
    """A dispatcher died mid-attempt: its delivery's lease ran out a second ago."""
    event = _event(session, organization_id, timedelta(0), dispatched=True, published=True)
    create_deliveries(session, event, [session.get(Webhook, webhook_id)], utcnow() - timedelta(seconds=1))


def _stranded_event(session, organization_id: str, webhook_id: str) -> None:  # noqa: ARG001
    """Written five minutes ago with no dispatcher running (Prefect has it: only the fan-out is missing)."""
    _event(session, organization_id, timedelta(minutes=5), dispatched=False, published=True)


def _unemitted_event(session, organization_id: str, webhook_id: str) -> None:  # noqa: ARG001
    """Fanned out, but never emitted into Prefect's event stream."""
    _event(session, organization_id, timedelta(minutes=5), dispatched=True, published=False)


def _old_history(session, organization_id: str, webhook_id: str) -> None:
    """A delivery settled 40 days ago: past the 30-day history."""
    event = _event(session, organization_id, timedelta(days=40), dispatched=True, published=True)
    session.add(
        Delivery(
            id=new_id("dlv", at=utcnow() - timedelta(days=40)), organization_id=organization_id,
            webhook_id=webhook_id, event_id=event.id, event_type=event.type, status="succeeded", attempt_count=1,
        )
    )  # fmt: skip


def _ended_cooldown(session, organization_id: str, webhook_id: str) -> None:  # noqa: ARG001
    """A throttled webhook's cooldown that ended an hour ago."""
    past = utcnow() - timedelta(hours=2)
    throttles.claim_cooldown(session, webhook_id, "drift.detected", {}, "dlv_old", past, timedelta(hours=1))


RETRY_WORK = {
    "an expired lease": (_expired_lease, "a delivery's retry or expired lease is due"),
    "a stranded event": (_stranded_event, "an event no dispatcher fanned out"),
    "an event Prefect never got": (_unemitted_event, "an event not emitted to Prefect"),
    "history past its retention": (_old_history, "settled deliveries past the history retention"),
    "an ended cooldown": (_ended_cooldown, "ended cooldowns"),
}


@pytest.mark.parametrize("work", RETRY_WORK)
def test_the_retry_sweep_is_due_for_each_kind_of_its_work_and_quiet_once_it_ran(
    work, sweep_database, client, organization
):
    make, reason = RETRY_WORK[work]
    with Receiver() as receiver:
        webhook_id = _webhook(client, organization, receiver.url)
        with session_scope(sweep_database) as session:
            make(session, organization.id, webhook_id)

        assert due(retry_sweep_due, sweep_database) == reason
        asyncio.run(retry_due_deliveries())
        assert due(retry_sweep_due, sweep_database) is None


# --- registry-sync ---------------------------------------------------------------------------------


def test_registry_sync_is_due_for_a_sync_interval_elapsed_and_for_old_receipts(sweep_database, org):  # noqa: ARG001
    with session_scope(sweep_database) as session:
        session.add(
            Integration(
                id="int_gate", organization_id=ORG, name="registry", type="mlflow", project_id="p1",
                config={"tracking_uri": "http://mlflow.example.com", "sync_interval_seconds": 600}, secret_fields=[],
            )
        )  # fmt: skip
    assert due(registry_sync_due, sweep_database) == "1 integration(s) due for a sync"
    # What the sweep records of every integration it synced, whether the platform answered or not.
    record_sync_outcome.fn("int_gate", utcnow(), 0, "the platform did not answer")
    assert due(registry_sync_due, sweep_database) is None

    with session_scope(sweep_database) as session:
        session.add(
            InboundReceipt(integration_id="int_gate", receipt_id="r-1", received_at=utcnow() - timedelta(days=3))
        )
    assert due(registry_sync_due, sweep_database) == "inbound receipts past their retention"
    assert sync_registry() == {}  # nothing to sync: it forgets the receipts
    assert due(registry_sync_due, sweep_database) is None


# --- run-monitors -----------------------------------------------------------------------------------


def _log(session, model: str) -> None:
    session.add(
        InferenceLog(
            organization_id=ORG, model=model, model_version="1", timestamp=utcnow(), features={"x": 1.0},
            prediction=1.0, latency_ms=5.0,
        )
    )  # fmt: skip


def test_run_monitors_is_due_for_a_model_without_a_monitor_until_it_is_recommended(sweep_database, org):  # noqa: ARG001
    with session_scope(sweep_database) as session:
        _log(session, "churn")
    assert due(add_monitor_rule_due, sweep_database) == "a monitored model without a drift monitor"
    assert due(run_monitors_due, sweep_database) is None  # the rule has a check of its own, once a minute
    asyncio.run(run_monitors())
    with session_scope(sweep_database) as session:
        assert [r.kind for r in session.query(Recommendation).filter_by(model="churn")] == ["add_monitor"]
    assert due(add_monitor_rule_due, sweep_database) is None


def test_run_monitors_is_due_for_a_due_monitor_and_every_round_while_log_thresholds_exist(
    sweep_database, client, org
):
    base = f"/organizations/{ORG}"
    monitor = {
        "reference": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
        "window_seconds": 3600, "method": "psi", "features": ["x"], "schedule": {"interval_seconds": 3600},
    }  # fmt: skip
    with session_scope(sweep_database) as session:
        _log(session, "churn")  # a model ModelPulse knows
    assert client.put(f"{base}/models/churn/monitor", json=monitor, headers=org.headers).status_code in (200, 201)
    with session_scope(sweep_database) as session:  # its first check falls due
        session.execute(update(Monitor).values(next_run_at=utcnow() - timedelta(seconds=1)))
    assert due(run_monitors_due, sweep_database) == "a monitor's check is due"
    asyncio.run(run_monitors())  # its check runs (and fails: no logs); the next is an hour away
    assert due(run_monitors_due, sweep_database) is None

    rule = {"model": "churn", "metric": "records.count", "operator": "<", "value": 10, "severity": "warning"}
    assert client.post(f"{base}/thresholds", json=rule, headers=org.headers).status_code == 201
    assert due(run_monitors_due, sweep_database) == "log-metric thresholds to evaluate"
    asyncio.run(run_monitors())  # a window with no record is a value too: it is evaluated every run
    assert due(run_monitors_due, sweep_database) == "log-metric thresholds to evaluate"


# --- the gate ---------------------------------------------------------------------------------------


def _gate_runs(deployment_id) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(),
        )


def test_gates_start_a_due_sweep_once_a_minute_and_nothing_else(sweep_database, org):  # noqa: ARG001
    # Deployments of the real sweeps under names of this test's own, so that no other gate of the session
    # (a test's worker) starts runs of them.
    suffix = uuid.uuid4().hex[:8]
    retry, monitors = f"retry-due-deliveries/gate-{suffix}", f"run-monitors/gate-{suffix}"
    retry_id = retry_due_deliveries.to_deployment(name=f"gate-{suffix}").apply()
    monitors_id = run_monitors.to_deployment(name=f"gate-{suffix}").apply()
    # The same sweep deployed twice (to a second work pool, say): Prefect keys runs per flow, not per
    # deployment, and each deployment must still get its own run.
    second = f"retry-due-deliveries/gate-{suffix}-second"
    second_id = retry_due_deliveries.to_deployment(name=f"gate-{suffix}-second").apply()
    checks = [SweepCheck(retry, retry_sweep_due), SweepCheck(second, retry_sweep_due),
              SweepCheck(monitors, run_monitors_due)]
    with session_scope(sweep_database) as session:
        _stranded_event(session, ORG, "")
    minute = utcnow().replace(second=5, microsecond=0)
    machines = [SweepGate(checks, database_url=sweep_database), SweepGate(checks, database_url=sweep_database)]

    first = machines[0].check(minute)
    again = machines[1].check(minute + timedelta(seconds=40))  # another machine's gate, the same minute
    assert set(first) == set(again) == {retry, second}
    assert first == again
    assert first[retry] != first[second]
    assert machines[0].check(minute + timedelta(seconds=10)) == {}  # started this minute already
    next_minute = machines[1].check(minute + timedelta(minutes=1))
    assert next_minute[retry] != first[retry]

    runs = _gate_runs(retry_id)
    assert sorted(run.id for run in runs) == sorted([first[retry], next_minute[retry]])
    assert {run.idempotency_key for run in runs} == {
        f"sweep-gate/{retry}/{minute:%Y-%m-%dT%H:%M}",
        f"sweep-gate/{retry}/{minute + timedelta(minutes=1):%Y-%m-%dT%H:%M}",
    }
    assert all(run.state.is_scheduled() for run in runs)
    assert _gate_runs(monitors_id) == []  # nothing for run-monitors to do
    assert sorted(run.id for run in _gate_runs(second_id)) == sorted([first[second], next_minute[second]])

    # An operator paused the sweep in the UI: no gate starts it, due or not.
    with get_client(sync_client=True) as client:
        client.pause_deployment(retry_id)
    assert set(machines[0].check(minute + timedelta(minutes=2))) == {second}
    assert len(_gate_runs(retry_id)) == 2


def test_a_gate_whose_database_is_gone_starts_nothing_and_carries_on(tmp_path, prefect_server, caplog):  # noqa: ARG001
    gate = SweepGate(database_url=f"sqlite:///{tmp_path}/missing/modelpulse.db")
    with caplog.at_level("WARNING", logger="prefect.sweep-gate"):
        assert gate.check() == {}
        assert gate.check(utcnow() + timedelta(minutes=1)) == {}
    warnings = [record.getMessage() for record in caplog.records if record.name == "prefect.sweep-gate"]
    assert len(warnings) == len({check.sweep for check in CHECKS}), warnings  # once per sweep, not per round


def test_a_check_with_a_period_runs_at_most_that_often_in_one_gate(sweep_database):
    """The add-monitor rule's check (two index probes per model of every organization) runs once a minute."""
    asked = []

    def finds_nothing(session, now):  # noqa: ARG001
        asked.append(now)

    gate = SweepGate([SweepCheck("run-monitors/run-monitors", finds_nothing, every=60)], database_url=sweep_database)
    start = utcnow()
    for seconds in (0, 10, 50, 60, 65, 119, 130):
        gate.check(start + timedelta(seconds=seconds))
    assert [(moment - start).total_seconds() for moment in asked] == [0, 60, 130]
    assert next(check for check in CHECKS if check.finds is add_monitor_rule_due).every == 60


@pytest.mark.parametrize("value", ["0.001", "0.5", "-1", "nan", "inf", "3601"])
def test_the_check_interval_is_off_or_one_second_to_an_hour(value, monkeypatch):
    monkeypatch.setenv("MODELPULSE_SWEEP_CHECK_SECONDS", value)
    with pytest.raises(ValidationError, match="sweep_check_seconds"):
        Settings()
    monkeypatch.setenv("MODELPULSE_SWEEP_CHECK_SECONDS", "0")
    assert Settings().sweep_check_seconds == 0
