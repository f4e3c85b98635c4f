"""Starting the registry flows from a request, and reading how a run is doing.

``register-model`` runs in this process (a worker thread): the caller waits up to a limit for the
registered model, and a worker's 3-12 s pick-up delay would eat most of that limit. The flow run is
created first so its id is known even when the answer is 202. ``sync-registry`` goes through its
deployment (``run_deployment``), like every scheduled run, and the request answers 202 at once.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_UI_URL

from api.errors import NotFound, ServiceUnavailable, UpstreamError
from api.services.connected_records import PREFECT_ERRORS
from flows.register_model import register_model
from flows.sync_registry import sync_registry
from tasks.registries import RegistryError

SYNC_DEPLOYMENT = f"{sync_registry.name}/registry-sync"
_registrations = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="register-model")


@contextmanager
def _prefect_reachable() -> Iterator[None]:
    """A Prefect server that cannot be reached is a 503: ours, and back soon."""
    try:
        yield
    except PREFECT_ERRORS as error:
        raise ServiceUnavailable(f"The Prefect server could not be reached: {type(error).__name__}") from None


def start_registration(integration_id: str, request: dict[str, Any]) -> tuple[str, concurrent.futures.Future]:
    """Create a ``register-model`` flow run and start it here; returns its id and its future result."""
    parameters = {"integration_id": integration_id, "request": request}
    with _prefect_reachable(), get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(register_model, parameters=parameters)
    future = _registrations.submit(run_flow, register_model, flow_run=flow_run, parameters=parameters)
    return str(flow_run.id), future


def await_registration(
    future: concurrent.futures.Future, flow_run_id: str, wait_seconds: float
) -> dict[str, Any] | None:
    """The registered model if the run ends within ``wait_seconds``, else ``None`` (it keeps running).

    A platform that refused the registration (after the task's retries) is a 502 with its message.
    """
    try:
        return future.result(timeout=wait_seconds)
    except concurrent.futures.TimeoutError:
        return None
    except RegistryError as error:
        raise UpstreamError(f"{error} (flow run {flow_run_id})") from None
    except ValueError as error:  # the integration's block document is missing
        raise UpstreamError(f"The integration's stored credentials could not be loaded: {error}") from None


def start_sync(integration_id: str) -> tuple[str, str]:
    """Create a ``sync-registry`` run of the deployment for this integration; returns id and state."""
    try:
        with _prefect_reachable():
            flow_run = run_deployment(SYNC_DEPLOYMENT, parameters={"integration_id": integration_id}, timeout=0)
    except ObjectNotFound:
        raise UpstreamError(f"The deployment {SYNC_DEPLOYMENT!r} does not exist; deploy prefect.yaml.") from None
    return str(flow_run.id), flow_run.state.type.value if flow_run.state else "SCHEDULED"


def flow_run_state(flow_run_id: str, flow_name: str, integration_id: str) -> tuple[str, str | None]:
    """The state of a run of ``flow_name`` for this integration, and its message if it failed.

    Any other id (another flow, another integration, not a run at all) is a 404.
    """
    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        raise NotFound(f"No {flow_name} run {flow_run_id!r}.") from None
    with _prefect_reachable(), get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(run_id)
            flow = client.read_flow(flow_run.flow_id)
        except ObjectNotFound:
            raise NotFound(f"No {flow_name} run {flow_run_id!r}.") from None
    if flow.name != flow_name or flow_run.parameters.get("integration_id") != integration_id:
        raise NotFound(f"No {flow_name} run {flow_run_id!r}.")
    state = flow_run.state
    if state is None:
        return "PENDING", None
    return state.type.value, state.message if state.is_failed() or state.is_crashed() else None


def registration_state(flow_run_id: str, integration_id: str) -> tuple[str, str | None]:
    """``flow_run_state`` of a ``register-model`` flow run of this integration."""
    return flow_run_state(flow_run_id, register_model.name, integration_id)


def prefect_run_url(flow_run_id: str) -> str:
    """The flow run's page in the Prefect UI (a path alone when ``PREFECT_UI_URL`` is unset)."""
    base = PREFECT_UI_URL.value() or ""
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"
