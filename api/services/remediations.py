"""Remediations: the Prefect automation behind each record, and the flow runs it started.

A remediation is a row (``store/remediations.py``) and a Prefect automation. The automation's trigger
expects ``modelpulse.<on.type>`` on a resource of the organization (``modelpulse.model.<org>.*`` or
``modelpulse.organization.<org>``, with the label ``modelpulse.organization`` equal to it) **and** the
related resource ``modelpulse.remediation.<id>`` (role ``remediation``); its action runs the deployment
with the parameters, strings holding Jinja passed as Prefect's ``{"__prefect_kind": "jinja"}`` templates,
rendered from the triggering event. The event publisher (``tasks/prefect_events.py``) names that related
resource only on the organization's events that match ``on`` (its filter evaluated there, every operator
of the webhook filter language), so one organization's events never start another's remediation.

Prefect first, then the database: the automation is written, then the row committed. A failure before
the commit deletes the automation again (best effort); one that is left over anyway (Prefect answered
after the request timed out) can never fire, since no event names the related resource of a remediation
that was never stored. Prefect down: 503, and nothing changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterCreatedBy
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.utilities.schema_tools.hydration import HydrationContext, HydrationError, hydrate
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import Conflict, ServiceUnavailable, Unprocessable
from api.schemas.remediations import RemediationIn, RemediationRunOut
from api.services.connected_records import PREFECT_ERRORS
from store.models import Remediation
from store.remediations import add_remediation, named, new_remediation_id
from tasks.prefect_events import (
    ORGANIZATION_LABEL,
    REMEDIATION_ROLE,
    model_resource_id,
    organization_resource_id,
    prefect_event_name,
    remediation_resource_id,
)

log = logging.getLogger(__name__)

JINJA_MARKERS = ("{{", "{%")


@contextmanager
def _prefect_reachable() -> Iterator[None]:
    """A Prefect server that cannot be reached (or fails) is a 503: nothing was changed."""
    try:
        yield
    except PrefectHTTPStatusError as error:
        if error.response.status_code < 500:
            raise
        raise _unavailable(error) from None
    except PREFECT_ERRORS as error:
        raise _unavailable(error) from None


def _unavailable(error: Exception) -> ServiceUnavailable:
    log.error("remediation: the Prefect server failed: %s", type(error).__name__)
    return ServiceUnavailable(
        f"The Prefect server could not be reached; the remediation was not changed ({type(error).__name__})."
    )


def templated(value: Any) -> Any:
    """``parameters`` as Prefect's run-deployment action takes them: strings holding Jinja become
    ``{"__prefect_kind": "jinja", "template": ...}``; values already in Prefect's form stay as they are."""
    if isinstance(value, str) and any(marker in value for marker in JINJA_MARKERS):
        return {"__prefect_kind": "jinja", "template": value}
    if isinstance(value, dict):
        if "__prefect_kind" in value:
            return value
        return {key: templated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [templated(item) for item in value]
    return value


def _template_problems(value: Any, path: str) -> list[tuple[str, str]]:
    """Where Prefect's hydration (without rendering) finds a bad template or placeholder."""
    if isinstance(value, HydrationError):
        return [(path, value.message)]
    if isinstance(value, dict):
        return [problem for key, item in value.items() for problem in _template_problems(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in _template_problems(item, f"{path}[{i}]")]
    return []


def _check_parameters(parameters: dict[str, Any], deployment: DeploymentResponse) -> dict[str, Any]:
    """The templated parameters, after checking them against Prefect's templating and the flow's parameters."""
    prefect_form = templated(parameters)
    try:
        hydrated = hydrate(prefect_form, HydrationContext(raise_on_error=False, render_jinja=False))
    except Exception as error:  # noqa: BLE001 - a placeholder Prefect's hydration cannot read at all
        raise Unprocessable.field("parameters", f"not valid Prefect parameters: {error}") from None
    problems = _template_problems(hydrated, "parameters")
    schema = deployment.parameter_openapi_schema or {}
    known = schema.get("properties")
    if isinstance(known, dict) and known:
        problems += [
            (f"parameters.{name}", f"the flow of {deployment.name!r} has no parameter {name!r}")
            for name in parameters
            if name not in known
        ]
    for name in schema.get("required") or []:
        if name not in parameters and name not in (deployment.parameters or {}):
            problems.append((f"parameters.{name}", "required by the flow and without a default in the deployment"))
    if problems:
        raise Unprocessable(
            "The parameters do not fit the deployment.",
            errors=[{"field": field, "message": message} for field, message in problems],
        )
    return prefect_form


def _deployment(client: SyncPrefectClient, name: str) -> DeploymentResponse:
    missing = Unprocessable.field("deployment", f"no Prefect deployment {name!r} (<flow name>/<deployment name>)")
    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise missing from None
    except PrefectHTTPStatusError as error:
        if error.response.status_code < 500:  # a name Prefect cannot even look up
            raise missing from None
        raise


@contextmanager
def _automation_accepted() -> Iterator[None]:
    """Prefect refusing an automation ModelPulse checked: what is left to refuse is in the parameters."""
    try:
        yield
    except PrefectHTTPStatusError as error:
        if error.response.status_code >= 500:
            raise
        refusal = error.response.text[:500]
        raise Unprocessable.field("parameters", f"Prefect refused the automation: {refusal}") from None


def _automation(
    organization_id: str, remediation_id: str, body: RemediationIn, deployment_id: UUID, parameters: dict[str, Any]
) -> AutomationCore:
    trigger = EventTrigger(
        expect={prefect_event_name(body.on.type)},
        match={
            "prefect.resource.id": [model_resource_id(organization_id, "*"), organization_resource_id(organization_id)],
            ORGANIZATION_LABEL: organization_id,
        },
        match_related={
            "prefect.resource.id": remediation_resource_id(remediation_id),
            "prefect.resource.role": REMEDIATION_ROLE,
        },
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
    )
    return AutomationCore(
        name=f"modelpulse {organization_id}: {body.name}"[:200],
        description=(
            f"ModelPulse remediation {remediation_id} of organization {organization_id}: "
            f"runs {body.deployment} on {body.on.type}"
        ),
        enabled=True,
        tags=["modelpulse", f"modelpulse.organization:{organization_id}"],
        trigger=trigger,
        actions=[RunDeployment(source="selected", deployment_id=deployment_id, parameters=parameters)],
    )


def _not_found(error: PrefectHTTPStatusError) -> bool:
    return error.response.status_code == 404


def read_automation(client: SyncPrefectClient, automation_id: str | UUID) -> Any:
    """The automation, or ``None`` when Prefect has none of that id (deleted there)."""
    try:
        return client.read_automation(UUID(str(automation_id)))
    except PrefectHTTPStatusError as error:
        if _not_found(error):
            return None
        raise


def delete_automation(client: SyncPrefectClient, automation_id: str | UUID) -> None:
    """Delete the automation; one already gone is fine."""
    try:
        client.delete_automation(UUID(str(automation_id)))
    except PrefectHTTPStatusError as error:
        if not _not_found(error):
            raise


def _forget_automation(automation_id: UUID | str) -> None:
    """Delete an automation whose record could not be stored (best effort: a leftover never fires)."""
    try:
        with get_client(sync_client=True) as client:
            delete_automation(client, automation_id)
    except Exception as error:  # noqa: BLE001 - nothing names its related resource, so it never fires
        log.warning("remediation: automation %s left in Prefect: %s", automation_id, type(error).__name__)


def _duplicate(name: str) -> Conflict:
    return Conflict(f"A remediation named {name!r} already exists in this organization.")


def create_remediation(session: Session, organization_id: str, body: RemediationIn) -> Remediation:
    """Create the automation in Prefect, then the record; a failure in between leaves neither."""
    if named(session, organization_id, body.name) is not None:
        raise _duplicate(body.name)
    remediation_id = new_remediation_id()
    with _prefect_reachable(), get_client(sync_client=True) as client:
        deployment = _deployment(client, body.deployment)
        parameters = _check_parameters(body.parameters, deployment)
        with _automation_accepted():
            automation_id = client.create_automation(
                _automation(organization_id, remediation_id, body, deployment.id, parameters)
            )
    try:
        remediation = add_remediation(session, organization_id, remediation_id, _fields(body, automation_id))
        session.commit()
    except BaseException as error:
        session.rollback()
        _forget_automation(automation_id)
        if isinstance(error, IntegrityError):
            raise _duplicate(body.name) from None
        raise
    return remediation


def replace_remediation(session: Session, remediation: Remediation, body: RemediationIn) -> Remediation:
    """Rewrite the automation (made again if it was deleted in Prefect), then the record."""
    other = named(session, remediation.organization_id, body.name)
    if other is not None and other.id != remediation.id:
        raise _duplicate(body.name)
    organization_id = remediation.organization_id
    with _prefect_reachable(), get_client(sync_client=True) as client:
        deployment = _deployment(client, body.deployment)
        parameters = _check_parameters(body.parameters, deployment)
        automation = _automation(organization_id, remediation.id, body, deployment.id, parameters)
        previous = read_automation(client, remediation.automation_id)
        with _automation_accepted():
            if previous is None:
                automation_id = client.create_automation(automation)
            else:
                automation_id = previous.id
                client.update_automation(automation_id, automation)
    try:
        for name, value in _fields(body, automation_id).items():
            setattr(remediation, name, value)
        session.commit()
    except BaseException as error:
        session.rollback()
        _restore_automation(previous, automation_id)
        if isinstance(error, IntegrityError):
            raise _duplicate(body.name) from None
        raise
    return remediation


def _restore_automation(previous: Any, automation_id: UUID) -> None:
    """Put the automation back as it was before an update whose record could not be stored."""
    try:
        with get_client(sync_client=True) as client:
            if previous is None:
                delete_automation(client, automation_id)
            else:
                client.update_automation(automation_id, AutomationCore.model_validate(previous, from_attributes=True))
    except Exception as error:  # noqa: BLE001 - logged; the next PUT writes it again
        log.error("remediation: automation %s could not be restored: %s", automation_id, type(error).__name__)


def delete_remediation(session: Session, remediation: Remediation) -> None:
    """Delete the automation first (one already gone is fine), then the record."""
    with _prefect_reachable(), get_client(sync_client=True) as client:
        delete_automation(client, remediation.automation_id)
    session.delete(remediation)
    session.commit()


def _fields(body: RemediationIn, automation_id: UUID) -> dict[str, Any]:
    return {
        "name": body.name,
        "on": body.on.model_dump(mode="json"),
        "deployment": body.deployment,
        "parameters": body.parameters,
        "automation_id": str(automation_id),
    }


def remediation_runs(remediation: Remediation, offset: int, limit: int) -> list[RemediationRunOut]:
    """The flow runs the remediation's automation started, oldest first, ``limit`` from ``offset``."""
    created_by = FlowRunFilterCreatedBy(id_=[UUID(remediation.automation_id)], type_=["AUTOMATION"])
    with _prefect_reachable(), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(created_by=created_by),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            offset=offset,
            limit=limit,
        )
    return [
        RemediationRunOut(
            id=str(run.id),
            name=run.name,
            state=run.state.type.value if run.state else None,
            state_name=run.state.name if run.state else None,
            parameters=run.parameters,
            deployment_id=str(run.deployment_id) if run.deployment_id else None,
            created_at=run.created,
            start_time=run.start_time,
            end_time=run.end_time,
        )
        for run in runs
    ]
