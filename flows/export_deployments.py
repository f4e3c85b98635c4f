"""Each export's Prefect deployment: created from the ``export/export`` template, kept in step with
the export (schedule, enabled), and the way its runs are started.

Why one deployment per export: the export's schedule *is* the deployment's schedule, the Prefect UI
lists an export's run history under its own name, and a concurrency limit of 1 per deployment keeps
two runs of one export from shipping the same pages at once.

The template deployment (``prefect.yaml``, ``prefect deploy --all``) says where the code lives (its
pull steps), which work pool runs it and with which job variables; an export's deployment copies
those, so it runs exactly where the template runs.

Example:
    ```python
    deployment_id = sync_export_deployment(export)      # on create / update / disable
    flow_run_id = start_export_run(export, run.id, None)  # POST .../trigger
    remove_export_deployment(export.id)                   # on delete
    ```
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.exceptions import ObjectNotFound
from prefect.states import Scheduled

from store.models import Export

FLOW_NAME = "export"
TEMPLATE_DEPLOYMENT = f"{FLOW_NAME}/export"


class TemplateMissing(RuntimeError):
    """The ``export/export`` deployment from ``prefect.yaml`` has not been deployed."""


def deployment_name(export_id: str) -> str:
    """The export's deployment is ``export/<export id>``."""
    return export_id


def schedule_of(export: Export) -> IntervalSchedule | CronSchedule | None:
    """The Prefect schedule for ``export.schedule`` (``{"interval_seconds"}`` or ``{"cron", "timezone"}``)."""
    spec = export.schedule
    if not spec:
        return None
    if "interval_seconds" in spec:
        return IntervalSchedule(interval=timedelta(seconds=int(spec["interval_seconds"])))
    return CronSchedule(cron=spec["cron"], timezone=spec.get("timezone") or "UTC")


def sync_export_deployment(export: Export) -> UUID:
    """Create or update the export's deployment: parameters, schedule, paused when disabled.

    Raises:
        TemplateMissing: ``prefect deploy`` has not created ``export/export`` yet.
    """
    with get_client(sync_client=True) as client:
        try:
            template = client.read_deployment_by_name(TEMPLATE_DEPLOYMENT)
        except ObjectNotFound:
            raise TemplateMissing(
                f"deployment {TEMPLATE_DEPLOYMENT!r} not found: run `prefect --no-prompt deploy --all`"
                " from the repository root"
            ) from None
        deployment_id = client.create_deployment(
            flow_id=template.flow_id,
            name=deployment_name(export.id),
            description=f"Export {export.name!r} ({export.type}) of organization {export.organization_id}",
            parameters={"export_id": export.id},
            work_pool_name=template.work_pool_name,
            work_queue_name=template.work_queue_name,
            job_variables=template.job_variables,
            path=template.path,
            entrypoint=template.entrypoint,
            pull_steps=template.pull_steps,
            parameter_openapi_schema=template.parameter_openapi_schema,
            enforce_parameter_schema=True,
            concurrency_limit=1,
            tags=["modelpulse", "export", export.type],
        )
        # Replace the schedules rather than trusting an upsert to do it: an export has at most one.
        for existing in client.read_deployment_schedules(deployment_id):
            client.delete_deployment_schedule(deployment_id, existing.id)
        schedule = schedule_of(export)
        if schedule is not None:
            client.create_deployment_schedules(
                deployment_id, [DeploymentScheduleCreate(schedule=schedule, active=export.enabled)]
            )
        if export.enabled:
            client.resume_deployment(deployment_id)
        else:
            client.pause_deployment(deployment_id)
        return deployment_id


def remove_export_deployment(export_id: str) -> None:
    """Delete the export's deployment (and with it its schedule); a missing one is already gone."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{deployment_name(export_id)}")
        except ObjectNotFound:
            return
        client.delete_deployment(deployment.id)


def start_export_run(export: Export, run_id: str, backfill: dict[str, Any] | None) -> UUID:
    """Create a flow run of the export's deployment for run record ``run_id``; returns its id.

    The parameters are ids and the backfill range only: the credentials stay in the export's block.
    """
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{deployment_name(export.id)}")
            deployment_id = deployment.id
        except ObjectNotFound:
            deployment_id = sync_export_deployment(export)
        flow_run = client.create_flow_run_from_deployment(
            deployment_id,
            parameters={"export_id": export.id, "run_id": run_id, "backfill": backfill},
            state=Scheduled(),
            tags=["manual" if backfill is None else "backfill"],
        )
        return flow_run.id


def deployment_schedules(export_id: str) -> tuple[bool, list[Any]]:
    """``(paused, schedules)`` of the export's deployment, for status and tests."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{deployment_name(export_id)}")
        return deployment.paused, list(deployment.schedules)
