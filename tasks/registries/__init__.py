"""Registry connectors, one module per platform, all speaking ``tasks.registries.base.ModelRegistry``.

A platform's module (and its SDK) is imported when an integration of that type is first used: the
Vertex AI SDK alone would add seconds to the start of every process that imports this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from blocks.connections import load_connection
from tasks.registries.base import (
    EndpointInfo,
    ModelRegistry,
    ModelVersionInfo,
    RegistryError,
    RegistryRefused,
    RegistryTimeout,
)

CONNECTORS: dict[str, tuple[str, str]] = {
    "mlflow": ("tasks.registries.mlflow", "MlflowRegistry"),
    "sagemaker": ("tasks.registries.sagemaker", "SagemakerRegistry"),
    "vertex_ai": ("tasks.registries.vertex_ai", "VertexAiRegistry"),
}


def connector_type(integration_type: str) -> Any:
    """The connector class for an integration type (its module imported on first use)."""
    module_name, class_name = CONNECTORS[integration_type]
    return getattr(import_module(module_name), class_name)


def open_registry(integration_id: str, integration_type: str, config: dict[str, Any]) -> ModelRegistry:
    """The connector for an integration, built from its stored block and its config."""
    block = load_connection("integration", integration_id, integration_type)
    return connector_type(integration_type).from_block(block, config)


__all__ = [
    "CONNECTORS",
    "EndpointInfo",
    "ModelRegistry",
    "ModelVersionInfo",
    "RegistryError",
    "RegistryRefused",
    "RegistryTimeout",
    "connector_type",
    "open_registry",
]
