"""Run a drift check for the API: validate the windows, record the check, run ``detect-drift`` in process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy.orm import Session

from api.errors import Unprocessable, UpstreamError
from api.schemas.monitoring import DriftCheckIn
from flows.detect_drift import detect_drift
from store.drift import check_metrics, create_drift_check
from store.inference_logs import window_has_logs
from store.models import DriftCheck
from tasks.drift.check import check_summary

log = logging.getLogger(__name__)


def run_drift_check(session: Session, organization_id: str, body: DriftCheckIn) -> dict[str, Any]:
    """Check that both windows hold logs (422 otherwise), record the check, run the flow, return its summary.

    The flow runs in this process as an async flow (~0.1 s of Prefect overhead) and reads the
    database named by ``MODELPULSE_DATABASE_URL``, the same one the API serves.
    """
    for name, window in (("reference", body.reference), ("current", body.current)):
        if not window_has_logs(session, organization_id, body.model, body.model_version, window.from_, window.to):
            raise Unprocessable.field(name, f"no inference logs of model {body.model!r} in this window")
    check = create_drift_check(
        session,
        organization_id,
        model=body.model,
        model_version=body.model_version,
        method=body.method,
        threshold=body.threshold,
        features=body.features,
        reference_from=body.reference.from_,
        reference_to=body.reference.to,
        current_from=body.current.from_,
        current_to=body.current.to,
    )
    session.commit()
    try:
        return asyncio.run(detect_drift(check.id))
    except (httpx.HTTPError, PrefectHTTPStatusError) as error:
        log.error("detect-drift could not reach the Prefect server: %s", type(error).__name__)
        raise UpstreamError("The Prefect server could not be reached to run the drift check.") from None


def drift_check_summary(session: Session, check: DriftCheck) -> dict[str, Any]:
    """A stored check with its per-feature metrics, in the shape ``run_drift_check`` answers with."""
    return check_summary(check, check_metrics(session, check.id))
