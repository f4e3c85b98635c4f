"""Registry operations on one integration: live model and endpoint reads, registration, sync, test.

Routes sit under ``/organizations/{organization_id}/integrations/{integration_id}``, beside the
integration CRUD, with the same key check and the same 404 for another organization's integration.
"""

from __future__ import annotations

from flask import Blueprint, current_app, url_for
from pydantic import ValidationError
from sqlalchemy import select

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Accepted, Created, endpoint
from api.errors import Unprocessable, validation_problem
from api.pagination import encode_cursor, page_offset, paginate
from api.schemas.common import Page, PageQuery
from api.schemas.registries import (
    REGISTRATION_BODIES,
    ConnectionTestOut,
    EndpointOut,
    ModelVersionOut,
    MonitoredVersionOut,
    RegisteredModelOut,
    RegistrationBody,
    RegistrationStatus,
    RunAccepted,
    StatusChangeOut,
)
from api.services.integrations import integrations
from api.services.registry_calls import call_platform, call_registry, has_endpoints, platform_dicts
from api.services.registry_push import check_push, inbound_url
from api.services.registry_runs import (
    await_registration,
    prefect_run_url,
    registration_state,
    start_registration,
    start_sync,
)
from store.models import Integration, MonitoredModel
from store.registry import endpoint_status_history, model_recorded_by

bp = Blueprint("registries", __name__, url_prefix="/organizations/<organization_id>/integrations/<integration_id>")
require_organization_key(bp, owned={"integration_id": Integration})

DEFAULT_REGISTER_WAIT_SECONDS = 20.0


def _page_start(query: PageQuery) -> int:
    """Where a page of a live read starts: 0, or the position a ``next_cursor`` carries (else 422)."""
    return page_offset(query)


def _page_of(items: list, start: int, limit: int) -> tuple[list, str | None]:
    """An in-memory page of a live read (the platforms' own page tokens do not span models and versions)."""
    end = start + limit
    return items[start:end], encode_cursor(str(end)) if end < len(items) else None


@bp.get("/models")
@endpoint(query=PageQuery, response=Page[ModelVersionOut], problems=(401, 404, 422, 502, 504))
def list_models(organization_id: str, integration_id: str, query: PageQuery):
    """List models from integration.

    A live read of the platform: MLflow registered models and their versions (with aliases);
    SageMaker model package groups with their versioned packages, and models; Vertex AI models with
    their versions. Each item lists the endpoints serving it.
    """
    start = _page_start(query)  # a bad cursor is the client's error, found before calling the platform
    integration = integrations.get(db(), organization_id, integration_id)
    models = platform_dicts(call_registry(integration, lambda r: r.list_models()))
    items, cursor = _page_of(models, start, query.limit)
    return Page[ModelVersionOut](items=items, next_cursor=cursor)


@bp.post("/register-model")
@endpoint(
    body=RegistrationBody,
    response=RegisteredModelOut,
    status=201,
    accepted=RunAccepted,
    problems=(401, 404, 422, 502),
)
def register_model_view(organization_id: str, integration_id: str, body: dict):
    """Register a model.

    Runs the `register-model` flow. Answers 201 with the registered model once the platform has it
    and ModelPulse monitors it (and `model.registered` is emitted), or 202 with a status URL when
    that takes longer than the wait limit. Fields per type: mlflow `source`; sagemaker
    `model_package_group`, `image_uri`, `model_data_url`; vertex_ai `artifact_uri`,
    `serving_container_image_uri`.
    """
    integration = integrations.get(db(), organization_id, integration_id)
    try:
        request = REGISTRATION_BODIES[integration.type].model_validate(body)
    except ValidationError as error:
        raise validation_problem(error) from None
    flow_run_id, future = start_registration(integration.id, request.model_dump(mode="json"))
    status_url = url_for(
        ".registration_status", organization_id=organization_id, integration_id=integration_id, flow_run_id=flow_run_id
    )
    wait = current_app.config.get("REGISTER_MODEL_WAIT_SECONDS", DEFAULT_REGISTER_WAIT_SECONDS)
    registered = await_registration(future, flow_run_id, wait)
    if registered is None:
        return Accepted(RunAccepted(flow_run_id=flow_run_id, status="RUNNING", status_url=status_url), status_url)
    return Created(RegisteredModelOut(**registered, flow_run_id=flow_run_id), status_url)


@bp.get("/registrations/<flow_run_id>")
@endpoint(response=RegistrationStatus, problems=(401, 404))
def registration_status(organization_id: str, integration_id: str, flow_run_id: str):
    """Get the status of a registration (a `register-model` flow run) and its model once recorded."""
    integrations.get(db(), organization_id, integration_id)
    status, error = registration_state(flow_run_id, integration_id)
    recorded = model_recorded_by(db(), integration_id, flow_run_id)
    model = None
    if recorded is not None:
        model = RegisteredModelOut(
            monitored_model_id=recorded.id,
            flow_run_id=flow_run_id,
            name=recorded.name,
            version=recorded.version,
            external_id=recorded.external_id,
            source=None,
            status=None,
            aliases=recorded.aliases,
            tags=recorded.tags,
            created_at=recorded.registered_at,
            endpoints=[],
        )
    return RegistrationStatus(flow_run_id=flow_run_id, status=status, model=model, error=error)


@bp.get("/endpoints")
@endpoint(response=Page[EndpointOut], problems=(401, 404, 422, 502, 504))
def list_endpoints(organization_id: str, integration_id: str):
    """List the platform's serving endpoints (SageMaker, Vertex AI).

    Each endpoint's status, its variants or deployed models with model versions and traffic, the
    last status changes ModelPulse recorded and, for SageMaker, the last hour's CloudWatch
    invocations, latency and 4xx/5xx errors.
    """
    integration = integrations.get(db(), organization_id, integration_id)
    if not has_endpoints(integration):
        raise Unprocessable.field("integration_id", f"{integration.type} integrations have no endpoints")
    endpoints = call_registry(integration, lambda r: r.list_endpoints())
    items = [
        EndpointOut(
            **endpoint_info.as_dict(),
            status_changes=[
                StatusChangeOut(status=c.status, deployments=c.deployments, observed_at=c.observed_at)
                for c in endpoint_status_history(db(), integration.id, endpoint_info.external_id)
            ],
        )
        for endpoint_info in endpoints
    ]
    return Page[EndpointOut](items=items, next_cursor=None)


@bp.post("/sync")
@endpoint(response=RunAccepted, status=202, problems=(401, 404, 502))
def sync(organization_id: str, integration_id: str):
    """Sync the integration's registry now.

    Starts the `sync-registry` flow for this integration: new versions of monitored models are
    recorded and emit `model.registered` with `"source": "sync"`.
    """
    integration = integrations.get(db(), organization_id, integration_id)
    flow_run_id, state = start_sync(integration.id)
    return RunAccepted(flow_run_id=flow_run_id, status=state, status_url=prefect_run_url(flow_run_id))


@bp.post("/test")
@endpoint(response=ConnectionTestOut, problems=(401, 404, 502, 504))
def test_connection(organization_id: str, integration_id: str):
    """Test the integration: reach the platform with the stored credentials and report its answer.

    With `config.push_events` on an MLflow integration, also checks its webhook on MLflow (exists,
    ACTIVE) and has MLflow send its signed test event to this API's inbound route (`push`).
    """
    integration = integrations.get(db(), organization_id, integration_id)
    message = call_registry(integration, lambda r: r.test_connection())
    inbound = inbound_url(integration)
    push, state = call_platform(integration, lambda: check_push(integration, inbound))
    if state != integration.push_state:
        integration.push_state = state
        db().commit()
    return ConnectionTestOut(ok=True, message=message, push=push)


@bp.get("/monitored-models")
@endpoint(query=PageQuery, response=Page[MonitoredVersionOut], problems=(401, 404, 422))
def list_monitored_models(organization_id: str, integration_id: str, query: PageQuery):
    """List the model versions ModelPulse monitors on this integration.

    Each recorded version with how ModelPulse learnt of it (`api`, `push` or `sync`) and its aliases
    and tags as last reported (push events update them at once, each sync reconciles them).
    """
    integrations.get(db(), organization_id, integration_id)
    statement = select(MonitoredModel).where(MonitoredModel.integration_id == integration_id)
    rows, cursor = paginate(db(), statement, MonitoredModel.id, query)
    items = [
        MonitoredVersionOut(
            id=row.id,
            name=row.name,
            version=row.version,
            external_id=row.external_id,
            source=row.source,
            aliases=row.aliases,
            tags=row.tags,
            registered_at=row.registered_at,
            labels_updated_at=row.labels_updated_at,
        )
        for row in rows
    ]
    return Page[MonitoredVersionOut](items=items, next_cursor=cursor)
