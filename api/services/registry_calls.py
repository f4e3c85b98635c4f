"""Calling a registry platform from a request: a hard deadline and platform errors as problems.

A live read must answer within 30 s whatever the platform does: the connector runs under
``call_with_deadline`` (app config ``REGISTRY_CALL_DEADLINE_SECONDS``, default 25 s), which stops
waiting, and stops the call, at the deadline. Inside it each connector's client has its own
connect/read timeouts (MLflow 10 s, SageMaker 5/20 s, Vertex AI 20 s a call), answered as 504 too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app

from api.errors import UpstreamError, UpstreamTimeout
from api.services.deadlines import DeadlinePassed, call_with_deadline
from store.models import Integration
from tasks.registries import ModelRegistry, RegistryError, RegistryTimeout, open_registry
from tasks.registry_tasks import ENDPOINT_TYPES

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_DEADLINE_SECONDS = 25.0


def call_registry(integration: Integration, call: Callable[[ModelRegistry], T]) -> T:
    """``call(connector)`` for the integration, as 502/504 problems when the platform fails."""
    return call_platform(integration, lambda: call(open_registry(integration.id, integration.type, integration.config)))


def call_platform(integration: Integration, run: Callable[[], T]) -> T:
    """``run()`` (which calls the integration's platform) within the deadline, its failures as problems."""
    deadline = current_app.config.get("REGISTRY_CALL_DEADLINE_SECONDS", DEFAULT_DEADLINE_SECONDS)
    try:
        return call_with_deadline(run, deadline)
    except DeadlinePassed:
        raise UpstreamTimeout(f"The {integration.type} platform did not answer within {deadline:g} s.") from None
    except RegistryTimeout as error:
        raise UpstreamTimeout(str(error)) from None
    except RegistryError as error:
        log.info("integration %s: platform call failed", integration.id)
        raise UpstreamError(str(error)) from None
    except ValueError as error:  # the integration's block document is missing
        raise UpstreamError(f"The integration's stored credentials could not be loaded: {error}") from None


def platform_dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [item.as_dict() for item in items]


def has_endpoints(integration: Integration) -> bool:
    """Whether the integration's platform serves endpoints (SageMaker, Vertex AI; not MLflow)."""
    return integration.type in ENDPOINT_TYPES
