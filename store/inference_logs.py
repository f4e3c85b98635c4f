"""Inference-log access: bulk ingestion, filtered listing, and window reads served by an index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, Text, cast, func, insert, select
from sqlalchemy.orm import Session

from store.models import InferenceLog, utcnow

# Rows fetched per round trip when streaming a window; bounds memory, not correctness.
WINDOW_FETCH_SIZE = 10_000


def insert_inference_logs(session: Session, organization_id: str, records: list[dict[str, Any]]) -> int:
    """Insert ``records`` (already validated column dicts) with one multi-row INSERT; return the count.

    Core ``insert`` with a list of parameter dicts is an ``executemany``: no ORM object per row.
    """
    if not records:
        return 0
    ingested_at = utcnow()
    rows = [{**record, "organization_id": organization_id, "ingested_at": ingested_at} for record in records]
    session.execute(insert(InferenceLog.__table__), rows)
    return len(rows)


def list_inference_logs_query(
    organization_id: str,
    model: str | None = None,
    model_version: str | None = None,
    project_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select[tuple[InferenceLog]]:
    """Select an organization's logs, optionally one model's, within ``[start, end)``."""
    query = select(InferenceLog).where(InferenceLog.organization_id == organization_id)
    if model is not None:
        query = query.where(InferenceLog.model == model)
    if model_version is not None:
        query = query.where(InferenceLog.model_version == model_version)
    if project_id is not None:
        query = query.where(InferenceLog.project_id == project_id)
    if start is not None:
        query = query.where(InferenceLog.timestamp >= start)
    if end is not None:
        query = query.where(InferenceLog.timestamp < end)
    return query


def _window(organization_id: str, model: str, model_version: str | None, start: datetime, end: datetime):
    # These three predicates are the leading columns of ix_inference_logs_org_model_ts: a range scan.
    conditions = [
        InferenceLog.organization_id == organization_id,
        InferenceLog.model == model,
        InferenceLog.timestamp >= start,
        InferenceLog.timestamp < end,
    ]
    if model_version is not None:
        conditions.append(InferenceLog.model_version == model_version)
    return conditions


def window_features_query(
    organization_id: str, model: str, model_version: str | None, start: datetime, end: datetime
) -> Select[tuple[str]]:
    """The ``features`` JSON text of one model's logs within ``[start, end)`` (index range scan)."""
    # As text, so the rows are parsed by orjson (~3x the stdlib json the JSON column type would use).
    features_text = cast(InferenceLog.features, Text)
    return select(features_text).where(*_window(organization_id, model, model_version, start, end))


def stream_window_features(
    session: Session, organization_id: str, model: str, model_version: str | None, start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """Yield the feature dicts of one model's logs within ``[start, end)``."""
    query = window_features_query(organization_id, model, model_version, start, end)
    result = session.execute(query.execution_options(yield_per=WINDOW_FETCH_SIZE))
    for (features,) in result:
        yield orjson.loads(features)


def window_has_logs(
    session: Session, organization_id: str, model: str, model_version: str | None, start: datetime, end: datetime
) -> bool:
    """Whether any log of the model falls within ``[start, end)``."""
    query = select(InferenceLog.id).where(*_window(organization_id, model, model_version, start, end)).limit(1)
    return session.execute(query).first() is not None


def window_column(
    session: Session, organization_id: str, model: str, column: str, start: datetime, end: datetime
) -> list[Any]:
    """Non-null values of one column (``latency_ms``, ``prediction``...) of a model's logs in a window."""
    attribute = getattr(InferenceLog, column)
    query = select(attribute).where(*_window(organization_id, model, None, start, end), attribute.is_not(None))
    return list(session.scalars(query))


def models_logging_since(session: Session, organization_id: str, since: datetime) -> list[str]:
    """Models of the organization with at least one log at or after ``since``.

    A loose index scan over ``(organization_id, model, timestamp)``: two index probes per model
    (next model name, then its latest timestamp), so the cost grows with models, not with logs.
    """
    models: list[str] = []
    last: str | None = None
    while True:
        query = select(func.min(InferenceLog.model)).where(InferenceLog.organization_id == organization_id)
        if last is not None:
            query = query.where(InferenceLog.model > last)
        last = session.scalar(query)
        if last is None:
            return models
        latest = session.scalar(
            select(func.max(InferenceLog.timestamp)).where(
                InferenceLog.organization_id == organization_id, InferenceLog.model == last
            )
        )
        if latest is not None and latest >= since:
            models.append(last)
