"""What every registry connector speaks: the shapes it returns and the errors it raises.

Each platform module (``mlflow``, ``sagemaker``, ``vertex_ai``) exposes one class with the same five
methods (``ModelRegistry``), built from the integration's block and config, so adding a platform is
one new module plus one block.

Exceptions::

    RegistryError            the platform refused or could not be reached (message: the platform's)
     ├── RegistryTimeout     the platform did not answer in time
     └── RegistryRefused     the platform answered that the call is wrong (a 403, a missing model):
                             asking again gets the same answer, so it is not retried
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol


class RegistryError(Exception):
    """The platform could not be reached or rejected the call; ``str(error)`` is its message."""


class RegistryTimeout(RegistryError):
    """The platform did not answer within the client's timeout."""


class RegistryRefused(RegistryError):
    """The platform answered with a refusal that another attempt cannot change."""


# The 4xx answers that say the call itself is wrong. 408 (a timeout), 409 (Google's ABORTED, a
# conflict to retry), 425 and 429 (throttling) may pass.
FINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 411, 412, 413, 414, 415, 422})


def platform_error(status: int | None) -> type[RegistryError]:
    """The error class for a call the platform answered with ``status`` (``None``: no answer)."""
    return RegistryRefused if status in FINAL_STATUSES else RegistryError


@dataclass(frozen=True)
class ModelVersionInfo:
    """One version of one model as the platform reports it."""

    name: str
    version: str | None
    external_id: str
    source: str | None = None
    status: str | None = None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    endpoints: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EndpointInfo:
    """A serving endpoint: its status and what it serves (variants or deployed models)."""

    name: str
    status: str
    external_id: str
    deployments: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry(Protocol):
    """The interface shared by the MLflow, SageMaker and Vertex AI connectors."""

    def test_connection(self) -> str:
        """Reach the platform with the stored credentials; return what it answered, in words."""
        ...

    def list_models(self) -> list[ModelVersionInfo]:
        """Every model version on the platform, with the endpoints serving it."""
        ...

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        """The versions of one model (an empty list if the platform does not know the name)."""
        ...

    def register_model(self, request: dict[str, Any]) -> ModelVersionInfo:
        """Register a new version (creating the model if missing) and return it.

        ``request`` holds ``name``, optional ``description`` and ``tags``, the platform's own fields,
        and ``registration_id``: the same value on every retry of one registration, so a retried
        registration can find the version it already created.
        """
        ...

    def list_endpoints(self) -> list[EndpointInfo]:
        """Every serving endpoint with its status and deployments (empty for MLflow)."""
        ...
