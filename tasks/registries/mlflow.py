"""MLflow model registry: registered models, versions and aliases through ``MlflowClient``.

Stages are deprecated in MLflow 3, so versions carry aliases only. MLflow serves no endpoints.

``mlflow`` is imported where a client is used, not by this module: the API imports ``version_uri`` and
``platform_errors`` (through ``tasks.registries.mlflow_webhooks``) in every gunicorn worker, and ``import
mlflow`` is ~1.3 s of CPU and ~100 MB (scipy, pandas, pyarrow) that a worker serving no MLflow call
never needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.registries.base import EndpointInfo, ModelVersionInfo, RegistryTimeout, platform_error
from tasks.upstream_errors import mlflow_error, mlflow_status

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from blocks.mlflow import MlflowConnection

REGISTRATION_TAG = "modelpulse.registration_id"
PAGE_SIZE = 200


@contextmanager
def platform_errors() -> Iterator[None]:
    """Turn the client's exceptions into ``RegistryError`` carrying MLflow's documented error fields
    (never a body MLflow's client quotes)."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        message, raw = mlflow_error(error), str(error.message).lower()
        if "response body:" not in raw and ("timed out" in raw or "timeout" in raw):
            raise RegistryTimeout(f"MLflow did not answer in time: {message}") from error
        raise platform_error(mlflow_status(error))(f"MLflow: {message}") from error


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def version_uri(name: str, version: str) -> str:
    """MLflow's handle for one version of a registered model (``models:/churn/3``)."""
    return f"models:/{name}/{version}"


def _version_info(version: ModelVersion, aliases: list[str] | None = None) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        external_id=version_uri(version.name, str(version.version)),
        source=version.source,
        status=version.status,
        aliases=list(aliases if aliases is not None else version.aliases or []),
        tags=dict(version.tags or {}),
        created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
        if version.creation_timestamp
        else None,
    )


class MlflowRegistry:
    """The MLflow connector (see ``tasks.registries.base.ModelRegistry``)."""

    def __init__(self, connection: MlflowConnection) -> None:
        self._connection = connection
        self._client = connection.get_client()

    @classmethod
    def from_block(cls, block: MlflowConnection, config: dict[str, Any]) -> MlflowRegistry:
        return cls(block)

    def test_connection(self) -> str:
        with platform_errors():
            page = self._client.search_registered_models(max_results=1)
        more = " or more" if page.token else ""
        return f"MLflow at {self._connection.tracking_uri} answered: {len(page)}{more} registered model(s) visible"

    def _aliases(self, filter_string: str | None) -> dict[tuple[str, str], list[str]]:
        """(model, version) -> aliases; version searches leave aliases out, registered models carry them."""
        aliases: dict[tuple[str, str], list[str]] = {}
        token = None
        while True:
            page = self._client.search_registered_models(
                filter_string=filter_string, max_results=PAGE_SIZE, page_token=token
            )
            for model in page:
                for alias, version in (model.aliases or {}).items():
                    aliases.setdefault((model.name, str(version)), []).append(alias)
            token = page.token
            if not token:
                return aliases

    def _search_versions(self, filter_string: str | None) -> list[ModelVersionInfo]:
        versions: list[ModelVersionInfo] = []
        token = None
        with platform_errors():
            aliases = self._aliases(filter_string)
            while True:
                page = self._client.search_model_versions(
                    filter_string=filter_string, max_results=PAGE_SIZE, page_token=token
                )
                versions.extend(_version_info(v, sorted(aliases.get((v.name, str(v.version)), []))) for v in page)
                token = page.token
                if not token:
                    return versions

    def list_models(self) -> list[ModelVersionInfo]:
        return self._search_versions(None)

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        return self._search_versions(f"name = {_quoted(name)}")

    def register_model(self, request: dict[str, Any]) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        name = request["name"]
        tags = {**(request.get("tags") or {}), REGISTRATION_TAG: request["registration_id"]}
        with platform_errors():
            try:
                self._client.create_registered_model(name, description=request.get("description"))
            except MlflowException as error:
                if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
            # A retry after a lost response must not create a second version.
            for existing in self.list_versions(name):
                if existing.tags.get(REGISTRATION_TAG) == request["registration_id"]:
                    return existing
            version = self._client.create_model_version(
                name, source=request["source"], tags=tags, description=request.get("description")
            )
        return _version_info(version)

    def list_endpoints(self) -> list[EndpointInfo]:
        return []
