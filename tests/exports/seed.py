"""Write monitoring data the way producers will: rows in the store, committed (events via the outbox)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from store.db import session_scope
from store.events import record_event
from store.ids import new_id
from store.models import DriftMetric, Export, InferenceLog, Organization

BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def organization() -> str:
    """A fresh organization id, so tests sharing the database never see each other's rows."""
    org_id = new_id("org")
    with session_scope() as session:
        session.add(Organization(id=org_id))
    return org_id


def inference_logs(org_id: str, count: int, start: int = 0, model: str = "churn") -> None:
    rows: list[dict[str, Any]] = [
        {
            "organization_id": org_id,
            "project_id": None,
            "model": model,
            "model_version": "3",
            "timestamp": BASE_TIME + timedelta(minutes=start + i),
            "request_id": f"req-{start + i}",
            "features": {"age": 30 + (start + i) % 40, "plan": "pro"},
            "prediction": {"churn": 0.25},
            "label": None,
            "latency_ms": 12.5,
        }
        for i in range(count)
    ]
    with session_scope() as session:
        session.execute(insert(InferenceLog), rows)


def drift_metrics(org_id: str, count: int, start: int = 0) -> None:
    with session_scope() as session:
        for i in range(count):
            at = BASE_TIME + timedelta(hours=start + i)
            session.add(
                DriftMetric(
                    organization_id=org_id,
                    model="churn",
                    model_version="3",
                    feature="age",
                    method="psi",
                    value=0.1 * (i + 1),
                    threshold=0.2,
                    drifted=0.1 * (i + 1) > 0.2,
                    p_value=None,
                    reference_from=at - timedelta(days=7),
                    reference_to=at - timedelta(days=1),
                    current_from=at - timedelta(days=1),
                    current_to=at,
                    computed_at=at,
                )
            )


def events(org_id: str, types: list[str]) -> list[str]:
    ids = []
    with session_scope() as session:
        for i, type_ in enumerate(types):
            event = record_event(
                session,
                org_id,
                type_,
                {"model": "churn", "metric": "psi", "value": 0.4, "threshold": 0.2, "feature": "age"},
                timestamp=BASE_TIME + timedelta(seconds=i),
            )
            ids.append(event.id)
    return ids


def export(
    org_id: str,
    type_: str,
    config: dict[str, Any],
    credentials: dict[str, Any],
    streams: tuple[str, ...] = ("inference_logs", "drift_metrics", "events"),
    schedule: dict[str, Any] | None = None,
) -> str:
    """An export record plus its block document, as the API would create them."""
    from blocks.connections import save_connection

    export_id = new_id("exp")
    with session_scope() as session:
        session.add(
            Export(
                id=export_id,
                organization_id=org_id,
                name=f"export-{export_id}",
                type=type_,
                config=config,
                secret_fields=sorted(credentials),
                streams=list(streams),
                schedule=schedule,
            )
        )
    save_connection("export", export_id, type_, config, credentials)
    return export_id


def record_ids(org_id: str, stream: str = "inference_logs") -> list[str]:
    """The record ids (``inf_1``...) of an organization's stream, in export order."""
    from store.export_streams import PageQuery, read_page

    with session_scope() as session:
        return [r["record_id"] for r in read_page(session, PageQuery(stream, org_id), 100_000)]


def only_run(export_id: str):
    """The one run record of an export."""
    from sqlalchemy import select

    from store.models import ExportRun

    with session_scope() as session:
        return session.scalars(select(ExportRun).where(ExportRun.export_id == export_id)).one()


def rejected(run_id: str) -> list:
    """The rejected records of a run, in order."""
    from store.export_runs import rejected_of_run

    with session_scope() as session:
        return list(session.scalars(rejected_of_run(run_id)))


def watermark(export_id: str, stream: str = "inference_logs") -> str | None:
    """The export's watermark of ``stream`` (None before its first acknowledged page)."""
    from store.export_runs import read_watermark

    with session_scope() as session:
        return read_watermark(session, export_id, stream)
