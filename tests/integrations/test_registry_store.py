"""The registry store functions on every configured backend (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from store.db import get_sessionmaker, session_scope
from store.models import Event, Integration, MonitoredModel, Organization, utcnow
from store.registry import (
    claim_inbound_receipt,
    delete_version_alias,
    endpoint_status_history,
    integrations_due_for_sync,
    monitored_versions,
    prune_inbound_receipts,
    reconcile_version_labels,
    record_endpoint_status,
    record_model_version,
    record_sync_outcome,
    set_version_alias,
    set_version_tag,
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



def test_a_version_recorded_at_once_by_two_writers_has_one_winner_and_one_event(database_url, integration_id):
    """A push and a sync recording the same version concurrently: the unique claim decides."""
    first = get_sessionmaker(database_url)()
    record_model_version(first, first.get(Integration, integration_id), "churn", "4", "m:/4", source="push")
    first.flush()  # the first writer holds its row, uncommitted
    outcome: list[object] = []

    def second_writer() -> None:
        with session_scope(database_url) as session:
            integration = session.get(Integration, integration_id)
            outcome.append(record_model_version(session, integration, "churn", "4", "m:/4", source="sync"))

    writer = threading.Thread(target=second_writer)
    writer.start()
    writer.join(timeout=0.5)  # it waits on the first writer's row (or its lock)
    first.commit()
    first.close()
    writer.join(timeout=60)

    assert outcome == [None]
    with session_scope(database_url) as session:
        events = list(session.scalars(select(Event)))
        rows = list(session.scalars(select(MonitoredModel)))
    assert [(e.data["version"], e.data["source"]) for e in events] == [("4", "push")]
    assert [(r.version, r.source) for r in rows] == [("4", "push")]


def test_an_inbound_receipt_is_taken_once_and_pruned_when_old(database_url, integration_id):
    with session_scope(database_url) as session:
        assert claim_inbound_receipt(session, integration_id, "delivery-1") is True
        assert claim_inbound_receipt(session, integration_id, "delivery-1") is False
    with session_scope(database_url) as session:
        assert claim_inbound_receipt(session, integration_id, "delivery-1") is False
        assert claim_inbound_receipt(session, integration_id, "delivery-2") is True

    with session_scope(database_url) as session:
        assert prune_inbound_receipts(session, utcnow() - timedelta(hours=1)) == 0
        assert prune_inbound_receipts(session, utcnow() + timedelta(seconds=1)) == 2
    with session_scope(database_url) as session:
        assert claim_inbound_receipt(session, integration_id, "delivery-1") is True


def _labels(database_url: str, integration_id: str) -> dict[str, tuple[list[str], dict]]:
    with session_scope(database_url) as session:
        rows = session.scalars(select(MonitoredModel).where(MonitoredModel.integration_id == integration_id))
        return {row.version: (row.aliases, row.tags) for row in rows}


def test_an_alias_names_one_version_and_tags_are_set_and_deleted(database_url, integration_id):
    with session_scope(database_url) as session:
        integration = session.get(Integration, integration_id)
        for version in ("1", "2"):
            record_model_version(session, integration, "churn", version, f"m:/{version}", "push", tags={"team": "risk"})

    with session_scope(database_url) as session:
        assert set_version_alias(session, integration_id, "churn", "champion", "1") is True
        assert set_version_tag(session, integration_id, "churn", "1", "stage", "prod") is True
        assert set_version_tag(session, integration_id, "churn", "9", "stage", "prod") is False  # not recorded
    assert _labels(database_url, integration_id) == {
        "1": (["champion"], {"team": "risk", "stage": "prod"}),
        "2": ([], {"team": "risk"}),
    }
    with session_scope(database_url) as session:
        assert set_version_alias(session, integration_id, "churn", "champion", "2") is True  # it moves
        assert set_version_tag(session, integration_id, "churn", "1", "team", None) is True
    assert _labels(database_url, integration_id) == {
        "1": ([], {"stage": "prod"}),
        "2": (["champion"], {"team": "risk"}),
    }
    with session_scope(database_url) as session:
        assert delete_version_alias(session, integration_id, "churn", "champion") is True
        assert delete_version_alias(session, integration_id, "churn", "champion") is False
    assert _labels(database_url, integration_id)["2"] == ([], {"team": "risk"})


def test_a_sync_read_older_than_a_push_leaves_the_labels_alone(database_url, integration_id):
    with session_scope(database_url) as session:
        record_model_version(session, session.get(Integration, integration_id), "churn", "1", "m:/1", "sync")
    read_before_push = utcnow()
    with session_scope(database_url) as session:
        set_version_alias(session, integration_id, "churn", "champion", "1")

    with session_scope(database_url) as session:
        stale = reconcile_version_labels(session, integration_id, "churn", "1", [], {}, read_before_push)
        fresh = reconcile_version_labels(session, integration_id, "churn", "1", ["prod"], {"a": "b"}, utcnow())

    assert (stale, fresh) == (False, True)
    assert _labels(database_url, integration_id) == {"1": (["prod"], {"a": "b"})}


def test_an_endpoint_status_observed_before_the_last_one_is_not_a_change(database_url, integration_id):
    now = utcnow()
    with session_scope(database_url) as session:
        assert record_endpoint_status(session, integration_id, "ep", "Updating", [], observed_at=now) is not None
        assert record_endpoint_status(session, integration_id, "ep", "Creating", [], now - timedelta(seconds=5)) is None
        assert record_endpoint_status(session, integration_id, "ep", "InService", [], now + timedelta(seconds=5))


def test_label_changes_of_one_version_at_once_are_both_kept(database_url, integration_id):
    """Two tag deliveries about one version, in two processes at once: neither overwrites the other."""
    with session_scope(database_url) as session:
        record_model_version(session, session.get(Integration, integration_id), "churn", "1", "m:/1", "push")
    first = get_sessionmaker(database_url)()
    set_version_tag(first, integration_id, "churn", "1", "team", "risk")
    first.flush()  # written, uncommitted

    def second_writer() -> None:
        with session_scope(database_url) as session:
            set_version_tag(session, integration_id, "churn", "1", "stage", "prod")

    writer = threading.Thread(target=second_writer)
    writer.start()
    writer.join(timeout=0.5)  # it waits for the first writer's lock
    first.commit()
    first.close()
    writer.join(timeout=60)

    assert _labels(database_url, integration_id) == {"1": ([], {"team": "risk", "stage": "prod"})}
