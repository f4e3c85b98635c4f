"""``register-model``: register a model version on an integration's platform and start monitoring it."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from tasks.registry_tasks import record_registration, register_on_platform


@flow(name="register-model", log_prints=False)
def register_model(integration_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Register ``request`` (name, description, tags and the platform's fields; no secrets) on the platform.

    The flow run id is the registration's idempotency key, so task retries find what they created.
    Success records the version as monitored and emits ``model.registered`` (source ``api``).
    """
    registered = register_on_platform(integration_id, request, registration_id=flow_run.get_id())
    return record_registration(integration_id, registered)
