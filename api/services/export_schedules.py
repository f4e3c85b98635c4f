"""Keep each export's Prefect deployment (and so its schedule) in step with the export record.

Called by the export routes after a create or update has committed, and before a delete. A create
or update whose deployment cannot be written still succeeds (the record is the source of truth and
the next trigger writes the deployment again), but says so in ``status_detail``.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from api.errors import ServiceUnavailable
from api.services.connected_records import PREFECT_ERRORS
from flows.export_deployments import TemplateMissing, remove_export_deployment, sync_export_deployment
from store.models import Export

log = logging.getLogger(__name__)

NOT_SCHEDULED = "schedule not applied: "


def apply_schedule(session: Session, export: Export) -> None:
    """Write the export's deployment (schedule, paused when disabled); note a failure on the record."""
    try:
        sync_export_deployment(export)
    except (TemplateMissing, *PREFECT_ERRORS) as error:
        log.warning("export %s: deployment not written: %s", export.id, type(error).__name__)
        export.status_detail = f"{NOT_SCHEDULED}{error}"[:2000]
        session.commit()
        return
    if export.status_detail and export.status_detail.startswith(NOT_SCHEDULED):
        export.status_detail = None
        session.commit()


def drop_schedule(export: Export) -> None:
    """Delete the export's deployment first, so a failure leaves the export (and schedule) whole."""
    try:
        remove_export_deployment(export.id)
    except PREFECT_ERRORS as error:
        raise ServiceUnavailable(
            f"The export's schedule could not be removed from Prefect; nothing was deleted ({type(error).__name__})."
        ) from None
