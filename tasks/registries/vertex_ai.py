"""Vertex AI: models with their versions, uploads (a long-running operation), endpoints.

Clients are the ``google.cloud.aiplatform_v1`` GAPIC clients over REST, built by ``blocks.gcp``.
A model's versions share one resource name (``projects/p/locations/l/models/123``); a version is
addressed as ``<name>@<version_id>``, which is the external id recorded for it.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud.aiplatform_v1 import Endpoint, Model, ModelContainerSpec
from prefect_gcp import GcpCredentials

from blocks.gcp import vertex_endpoint_client, vertex_model_client
from tasks.registries.base import (
    EndpointInfo,
    ModelVersionInfo,
    RegistryError,
    RegistryRefused,
    RegistryTimeout,
    platform_error,
)
from tasks.upstream_errors import bounded, connect_failure, google_error, google_token_error

CALL_TIMEOUT_SECONDS = 20.0
UPLOAD_TIMEOUT_SECONDS = 600.0


@contextmanager
def _platform_errors() -> Iterator[None]:
    """Turn google-api-core/google-auth/requests exceptions into ``RegistryError``s with Google's message."""
    try:
        yield
    except (api_exceptions.DeadlineExceeded, requests.Timeout, concurrent.futures.TimeoutError) as error:
        raise RegistryTimeout(f"Vertex AI did not answer in time: {bounded(error)}") from error
    except api_exceptions.GoogleAPICallError as error:
        raise platform_error(error.code)(f"Vertex AI: {google_error(error)}") from error
    except auth_exceptions.RefreshError as error:
        # The token endpoint refused the service account; google-auth marks what may pass retryable.
        raise (RegistryError if getattr(error, "retryable", False) else RegistryRefused)(
            f"Vertex AI credentials were rejected by the token endpoint: {google_token_error(error)}"
        ) from error
    except (auth_exceptions.TransportError, requests.RequestException) as error:
        raise RegistryError(f"Vertex AI could not be reached: {connect_failure(error)}") from error


def _version_info(model: Model) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=model.display_name,
        version=model.version_id,
        external_id=f"{model.name}@{model.version_id}",
        source=model.artifact_uri or None,
        status="READY",
        aliases=list(model.version_aliases),
        tags=dict(model.labels),
        created_at=model.version_create_time or model.create_time or None,
        endpoints=sorted({deployed.endpoint for deployed in model.deployed_models}),
    )


class VertexAiRegistry:
    """The Vertex AI connector (see ``tasks.registries.base.ModelRegistry``)."""

    def __init__(self, credentials: GcpCredentials, project: str, location: str, api_endpoint: str | None) -> None:
        self._parent = f"projects/{project}/locations/{location}"
        self._models = vertex_model_client(credentials, location, api_endpoint)
        self._endpoints = vertex_endpoint_client(credentials, location, api_endpoint)

    @classmethod
    def from_block(cls, block: GcpCredentials, config: dict[str, Any]) -> VertexAiRegistry:
        return cls(block, config["project_id"], config["location"], config.get("api_endpoint"))

    def test_connection(self) -> str:
        with _platform_errors():
            page = self._models.list_models(
                request={"parent": self._parent, "page_size": 1}, timeout=CALL_TIMEOUT_SECONDS
            )
            first = next(iter(page.pages))
        more = " or more" if first.next_page_token else ""
        return f"Vertex AI answered for {self._parent}: {len(first.models)}{more} model(s) visible"

    def _models_named(self, name: str) -> list[Model]:
        request = {"parent": self._parent, "filter": f'display_name="{name}"'}
        return list(self._models.list_models(request=request, timeout=CALL_TIMEOUT_SECONDS))

    def _versions(self, model: Model) -> list[ModelVersionInfo]:
        pager = self._models.list_model_versions(request={"name": model.name}, timeout=CALL_TIMEOUT_SECONDS)
        return [_version_info(version) for version in pager]

    def list_models(self) -> list[ModelVersionInfo]:
        with _platform_errors():
            models = self._models.list_models(request={"parent": self._parent}, timeout=CALL_TIMEOUT_SECONDS)
            return [version for model in models for version in self._versions(model)]

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        with _platform_errors():
            return [version for model in self._models_named(name) for version in self._versions(model)]

    def register_model(self, request: dict[str, Any]) -> ModelVersionInfo:
        name = request["name"]
        labels = dict(request.get("tags") or {})
        with _platform_errors():
            existing = self._models_named(name)
            model = Model(
                display_name=name,
                description=request.get("description") or "",
                artifact_uri=request["artifact_uri"],
                container_spec=ModelContainerSpec(image_uri=request["serving_container_image_uri"]),
                labels=labels,
            )
            upload = {"parent": self._parent, "model": model}
            if existing:  # a new version of the model with that name
                upload["parent_model"] = existing[0].name
            operation = self._models.upload_model(request=upload, timeout=CALL_TIMEOUT_SECONDS)
            response = operation.result(timeout=UPLOAD_TIMEOUT_SECONDS)
            uploaded = self._models.get_model(
                request={"name": f"{response.model}@{response.model_version_id}"}, timeout=CALL_TIMEOUT_SECONDS
            )
        return _version_info(uploaded)

    def list_endpoints(self) -> list[EndpointInfo]:
        with _platform_errors():
            endpoints = self._endpoints.list_endpoints(request={"parent": self._parent}, timeout=CALL_TIMEOUT_SECONDS)
            return [_endpoint_info(endpoint) for endpoint in endpoints]


def _endpoint_info(endpoint: Endpoint) -> EndpointInfo:
    traffic = dict(endpoint.traffic_split)
    deployments = [
        {
            "deployed_model_id": deployed.id,
            "display_name": deployed.display_name,
            "model": deployed.model,
            "model_version": deployed.model_version_id or None,
            "traffic": traffic.get(deployed.id, 0),
        }
        for deployed in endpoint.deployed_models
    ]
    # Vertex endpoints have no lifecycle state; "serving" means some deployed model takes traffic.
    status = "SERVING" if any(d["traffic"] for d in deployments) else "NO_TRAFFIC" if deployments else "EMPTY"
    return EndpointInfo(
        name=endpoint.display_name,
        status=status,
        external_id=endpoint.name,
        deployments=deployments,
        created_at=endpoint.create_time or None,
        updated_at=endpoint.update_time or None,
    )
