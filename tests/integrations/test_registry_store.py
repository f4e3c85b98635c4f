"""The registry store functions on every configured backend (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store.db import session_scope
from store.models import Event, Integration, Organization, utcnow
from store.registry import (
    endpoint_status_history,
    integrations_due_for_sync,
    monitored_versions,
    record_endpoint_status,
    record_model_version,
    record_sync_outcome,
    sync_state,
)


@pytest.fixture
def integration_id(database_url) -> str:
    with session_scope(database_url) as session:
        session.add(Organization(id="acme"))
        session.flush()
        session.add(
            Integration(
                id="int_store", organization_id="acme", name="registry", type="mlflow", project_id="p1",
                config={"tracking_uri": "http://mlflow", "sync_interval_seconds": 600}, secret_fields=[],
            )
        )  # fmt: skip
    return "int_store"


def test_a_version_is_recorded_once_with_one_event(database_url, integration_id):
    with session_scope(database_url) as session:
        integration = session.get(Integration, integration_id)
        first = record_model_version(session, integration, "churn", "1", "models:/churn/1", source="api")
        again = record_model_version(session, integration, "churn", "1", "models:/churn/1", source="sync")

    assert first is not None and again is None
    with session_scope(database_url) as session:
        events = list(session.scalars(select(Event)))
        assert monitored_versions(session, integration_id) == {"churn": {"1"}}
    assert [(e.type, e.project_id, e.data["source"]) for e in events] == [("model.registered", "p1", "api")]


def test_a_rolled_back_registration_leaves_no_event(database_url, integration_id):
    with pytest.raises(RuntimeError), session_scope(database_url) as session:
        record_model_version(session, session.get(Integration, integration_id), "churn", "1", "m:/1", source="api")
        raise RuntimeError("the caller's transaction failed")

    with session_scope(database_url) as session:
        assert list(session.scalars(select(Event))) == []
        assert monitored_versions(session, integration_id) == {}


def test_endpoint_status_is_recorded_only_when_it_changes(database_url, integration_id):
    serving = [{"variant": "primary", "model": "m", "traffic": 100}]
    with session_scope(database_url) as session:
        assert record_endpoint_status(session, integration_id, "ep", "Creating", []) is not None
        assert record_endpoint_status(session, integration_id, "ep", "InService", serving) is not None
        assert record_endpoint_status(session, integration_id, "ep", "InService", serving) is None
        assert record_endpoint_status(session, integration_id, "ep", "InService", []) is not None

    with session_scope(database_url) as session:
        history = endpoint_status_history(session, integration_id, "ep")
    assert [(c.status, c.deployments) for c in history] == [("InService", []), ("InService", serving), ("Creating", [])]


def test_an_integration_is_due_when_its_own_interval_has_elapsed(database_url, integration_id):
    now = utcnow()
    with session_scope(database_url) as session:
        assert [i.id for i in integrations_due_for_sync(session, now, 900)] == [integration_id]  # never synced
        record_sync_outcome(session, integration_id, now - timedelta(seconds=300), versions_recorded=2)

    with session_scope(database_url) as session:
        assert integrations_due_for_sync(session, now, 900) == []
        assert [i.id for i in integrations_due_for_sync(session, now + timedelta(seconds=301), 900)] == [integration_id]
        record_sync_outcome(session, integration_id, now, 0, error="MLflow: unreachable")
        session.flush()
        state = sync_state(session, integration_id)
        assert (state.last_status, state.last_error, state.versions_recorded) == ("failed", "MLflow: unreachable", 0)
