"""Registry connectors, one module per platform, all speaking ``tasks.registries.base.ModelRegistry``."""

from __future__ import annotations

from typing import Any

from blocks.connections import load_connection
from tasks.registries.base import EndpointInfo, ModelRegistry, ModelVersionInfo, RegistryError, RegistryTimeout
from tasks.registries.mlflow import MlflowRegistry
from tasks.registries.sagemaker import SagemakerRegistry
from tasks.registries.vertex_ai import VertexAiRegistry

CONNECTORS: dict[str, Any] = {
    "mlflow": MlflowRegistry,
    "sagemaker": SagemakerRegistry,
    "vertex_ai": VertexAiRegistry,
}


def open_registry(integration_id: str, integration_type: str, config: dict[str, Any]) -> ModelRegistry:
    """The connector for an integration, built from its stored block and its config."""
    block = load_connection("integration", integration_id, integration_type)
    return CONNECTORS[integration_type].from_block(block, config)


__all__ = [
    "CONNECTORS",
    "EndpointInfo",
    "ModelRegistry",
    "ModelVersionInfo",
    "RegistryError",
    "RegistryTimeout",
    "open_registry",
]
