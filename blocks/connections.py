"""Which block holds the secrets of which record, and how to save, read and delete it.

Every integration, export and webhook owns exactly one block document, named from the record
(``modelpulse-<kind>-<record id>``). Our database keeps only the names of the secret fields that are
set; the values exist only in the block.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import Any, NamedTuple

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


class ConnectionKind(NamedTuple):
    block_type: type[Block]
    build: Callable[[dict[str, Any], dict[str, Any]], Block]
    read: Callable[[Any], dict[str, Any]]


# (kind, type) -> (module, block class, builder or None, reader or None). Imported on first use:
# prefect_gcp alone pulls in the whole Vertex AI SDK, seconds that the API should not pay at start.
_CONNECTIONS: dict[tuple[str, str], tuple[str, str, str | None, str | None]] = {
    ("integration", "mlflow"): ("blocks.mlflow", "MlflowConnection", None, None),
    ("integration", "sagemaker"): (
        "blocks.aws", "SagemakerConnection", "aws_credentials_from_settings", "aws_credentials_values"
    ),
    ("integration", "vertex_ai"): (
        "blocks.gcp", "GcpCredentials", "gcp_credentials_from_settings", "gcp_credentials_values"
    ),
    ("export", "elasticsearch"): ("blocks.elasticsearch", "ElasticsearchConnection", None, None),
    ("export", "splunk"): ("blocks.splunk", "SplunkHecConnection", None, None),
    ("export", "datadog"): ("blocks.datadog", "DatadogConnection", None, None),
    ("webhook", "webhook"): ("blocks.webhook", "WebhookSecrets", None, None),
}

# Block types a record's document may still have from before its kind's current type: loaded when the
# current type has no document of that name, and deleted with the record. (SageMaker integrations
# were plain ``AwsCredentials`` before they could carry an EventBridge key.)
_LEGACY_BLOCK_TYPES: dict[tuple[str, str], tuple[str, str]] = {
    ("integration", "sagemaker"): ("prefect_aws", "AwsCredentials"),
}


@cache
def connection_kind(kind: str, type_: str) -> ConnectionKind:
    """The block type of a record kind and type, with how to build it and read its secrets back."""
    module_name, class_name, build, read = _CONNECTIONS[(kind, type_)]
    module = import_module(module_name)
    block_type = getattr(module, class_name)
    if build is None:  # our own blocks carry both as methods
        return ConnectionKind(block_type, block_type.from_settings, lambda block: block.credentials())
    return ConnectionKind(block_type, getattr(module, build), getattr(module, read))


def block_document_name(kind: str, record_id: str) -> str:
    """Block document names allow lower-case letters, digits and dashes only."""
    return f"modelpulse-{kind}-{record_id.replace('_', '-').lower()}"


def save_connection(
    kind: str, record_id: str, type_: str, config: dict[str, Any], credentials: dict[str, Any]
) -> Block:
    """Build the record's block from its config and credentials and save it (overwriting)."""
    block = connection_kind(kind, type_).build(config, credentials)
    _registering(lambda: block.save(block_document_name(kind, record_id), overwrite=True))
    if (kind, type_) in _LEGACY_BLOCK_TYPES:  # an older copy of the secrets must not outlive a change
        _delete_documents(block_document_name(kind, record_id), {_legacy_slug(kind, type_)})
    return block


def load_connection(kind: str, record_id: str, type_: str) -> Block:
    """Load the record's block; raises ``ValueError`` when the document is missing."""
    name = block_document_name(kind, record_id)
    try:
        return connection_kind(kind, type_).block_type.load(name)
    except ValueError:
        legacy = _LEGACY_BLOCK_TYPES.get((kind, type_))
        if legacy is None:
            raise
        return getattr(import_module(legacy[0]), legacy[1]).load(name)


def find_connection(kind: str, record_id: str, type_: str) -> Block | None:
    """The record's block, or ``None`` when it has no document."""
    try:
        return load_connection(kind, record_id, type_)
    except ValueError:
        return None


def credentials_of(kind: str, type_: str, block: Block | None) -> dict[str, Any]:
    """A block's secret values keyed as the API names them (empty for no block)."""
    return connection_kind(kind, type_).read(block) if block is not None else {}


def read_credentials(kind: str, record_id: str, type_: str) -> dict[str, Any]:
    """The stored secret values of a record (for merging a PUT), keyed as the API names them."""
    return credentials_of(kind, type_, find_connection(kind, record_id, type_))


def delete_connection(kind: str, record_id: str) -> None:
    """Delete the record's block document; a missing one is already gone."""
    slugs = {_block_type_slug(k, t) for (k, t) in _CONNECTIONS if k == kind}
    slugs |= {_legacy_slug(k, t) for (k, t) in _LEGACY_BLOCK_TYPES if k == kind}
    _delete_documents(block_document_name(kind, record_id), slugs)


def _delete_documents(name: str, slugs: set[str]) -> None:
    with get_client(sync_client=True) as client:
        for slug in slugs:
            try:
                document = client.read_block_document_by_name(name=name, block_type_slug=slug)
            except ObjectNotFound:
                continue
            client.delete_block_document(document.id)


def _block_type_slug(kind: str, type_: str) -> str:
    return connection_kind(kind, type_).block_type.get_block_type_slug()


def _legacy_slug(kind: str, type_: str) -> str:
    module_name, class_name = _LEGACY_BLOCK_TYPES[(kind, type_)]
    return getattr(import_module(module_name), class_name).get_block_type_slug()


def register_block_types() -> None:
    """Register every block type records use (ours and the AWS/GCP ones) with the Prefect server."""
    for kind, type_ in _CONNECTIONS:
        _registering(connection_kind(kind, type_).block_type.register_type_and_schema)


def _registering(call: Callable[[], Any]) -> Any:
    """Run ``call``, which registers a block type and schema first (``Block.save`` does). Prefect
    reads, then creates: a process doing the same at the same moment (API workers saving their first
    block of a type on a new server) makes the create a 409. Once more, the read finds theirs."""
    try:
        return call()
    except ObjectAlreadyExists:
        return call()
