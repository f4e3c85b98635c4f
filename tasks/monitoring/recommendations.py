"""Recommendation rules. Each new recommendation emits ``recommendation.created`` in its transaction.

* ``retrain``: a feature drifted in each of the model's 3 latest drift checks.
* ``scale_endpoint``: a latency threshold breached in 3 consecutive evaluations.
* ``add_monitor``: a model that ModelPulse monitors (it sent inference logs in the last day, or a
  registry integration records a version of it as monitored) has no drift monitor.

No duplicate: while an open recommendation of the same kind and model exists, the rule stays quiet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import session_scope
from store.drift import features_drifted_in_latest_checks
from store.events import record_event
from store.inference_logs import models_logging_since
from store.models import DriftCheck, Organization, utcnow
from store.monitors import monitored_models_without_monitor, registry_monitored_models
from store.recommendations import create_recommendation, open_recommendation_exists

CONSECUTIVE_DRIFTS = 3
CONSECUTIVE_LATENCY_BREACHES = 3
ACTIVE_MODEL_LOOKBACK = timedelta(days=1)


def recommend(
    session: Session, organization_id: str, model: str, kind: str, reason: str, details: dict[str, Any]
) -> str | None:
    """Open a recommendation and record its event; None when an open one of that kind and model exists."""
    recommendation = create_recommendation(session, organization_id, model, kind, reason, details)
    if recommendation is None:
        return None
    record_event(
        session,
        organization_id,
        "recommendation.created",
        {
            "recommendation_id": recommendation.id,
            "model": model,
            "kind": kind,
            "reason": reason,
            "details": details,
        },
    )
    return recommendation.id


@task(name="recommend-retraining", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def recommend_retraining(check_id: str) -> str | None:
    """After a check: ``retrain`` when some feature drifted in the model's 3 latest checks."""
    with session_scope() as session:
        check = session.get(DriftCheck, check_id)
        if check is None or not check.drifted:
            return None
        features = features_drifted_in_latest_checks(session, check.organization_id, check.model, CONSECUTIVE_DRIFTS)
        if not features:
            return None
        reason = f"{', '.join(features)} drifted in {CONSECUTIVE_DRIFTS} consecutive drift checks"
        return recommend(
            session, check.organization_id, check.model, "retrain", reason, {"features": features, "check_id": check.id}
        )


def recommend_scaling(session: Session, organization_id: str, model: str, evaluation: dict[str, Any]) -> str | None:
    """``scale_endpoint`` once a latency threshold has been breached in 3 consecutive evaluations."""
    if (
        not evaluation["metric"].startswith("latency_ms.")
        or evaluation["consecutive_breaches"] < CONSECUTIVE_LATENCY_BREACHES
    ):
        return None
    reason = (
        f"{evaluation['metric']} {evaluation['operator']} {evaluation['threshold']} "
        f"in {evaluation['consecutive_breaches']} consecutive evaluations (last {evaluation['value']:.1f})"
    )
    return recommend(session, organization_id, model, "scale_endpoint", reason, evaluation)


def monitored_models(session: Session, organization_id: str, now: datetime) -> list[str]:
    """Models the organization monitors: those logging in the last day and those a registry records."""
    logging = models_logging_since(session, organization_id, now - ACTIVE_MODEL_LOOKBACK)
    return sorted(set(logging) | set(registry_monitored_models(session, organization_id)))


@task(name="recommend-monitors", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def recommend_monitors(now: datetime | None = None) -> list[str]:
    """``add_monitor`` for every monitored model without a drift monitor, in every organization."""
    now = now or utcnow()
    created: list[str] = []
    with session_scope() as session:
        for organization_id, model in models_without_monitor(session, now):
            reason = f"{model} is monitored but has no drift monitor"
            recommendation_id = recommend(session, organization_id, model, "add_monitor", reason, {})
            if recommendation_id:
                created.append(recommendation_id)
    return created


def models_without_monitor(session: Session, now: datetime) -> Iterator[tuple[str, str]]:
    """(organization, model) of every monitored model without a drift monitor, organization by organization."""
    for organization_id in list(session.scalars(select(Organization.id).order_by(Organization.id))):
        models = monitored_models(session, organization_id, now)
        for model in monitored_models_without_monitor(session, organization_id, models):
            yield organization_id, model


def add_monitor_due(session: Session, now: datetime) -> bool:
    """Whether ``recommend_monitors`` would open a recommendation (one without an open one of its kind)."""
    return any(
        not open_recommendation_exists(session, organization_id, model, "add_monitor")
        for organization_id, model in models_without_monitor(session, now)
    )
