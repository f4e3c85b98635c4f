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


class _BlockType(NamedTuple):
    """Where a block class lives, named so it is imported on first use, and its block type slug."""

    module: str
    class_name: str
    slug: str  # == the class's get_block_type_slug() (a test holds them equal): deleting imports no class
    build: str | None = None  # builder and reader functions of the module; None: the class's own methods
    read: str | None = None


# (kind, type) -> its block type. Imported on first use: prefect_gcp alone pulls in the whole Vertex AI
# SDK, seconds that the API and flow runs of other types should not pay.
_CONNECTIONS: dict[tuple[str, str], _BlockType] = {
    ("integration", "mlflow"): _BlockType("blocks.mlflow", "MlflowConnection", "modelpulse-mlflow-connection"),
    ("integration", "sagemaker"): _BlockType(
        "blocks.aws",
        "SagemakerConnection",
        "modelpulse-sagemaker-connection",
        "aws_credentials_from_settings",
        "aws_credentials_values",
    ),
    ("integration", "vertex_ai"): _BlockType(
        "blocks.gcp", "GcpCredentials", "gcp-credentials", "gcp_credentials_from_settings", "gcp_credentials_values"
    ),
    ("export", "elasticsearch"): _BlockType(
        "blocks.elasticsearch", "ElasticsearchConnection", "modelpulse-elasticsearch-connection"
    ),
    ("export", "splunk"): _BlockType("blocks.splunk", "SplunkHecConnection", "modelpulse-splunk-hec-connection"),
    ("export", "datadog"): _BlockType("blocks.datadog", "DatadogConnection", "modelpulse-datadog-connection"),
    ("webhook", "webhook"): _BlockType("blocks.webhook", "WebhookSecrets", "modelpulse-webhook-secrets"),
}

# Block types a record's document may still have from before its kind's current type: loaded when the
# current type has no document of that name, and deleted with the record. (SageMaker integrations
# were plain ``AwsCredentials`` before they could carry an EventBridge key.)
_LEGACY_BLOCK_TYPES: dict[tuple[str, str], _BlockType] = {
    ("integration", "sagemaker"): _BlockType("prefect_aws", "AwsCredentials", "aws-credentials"),
}


@cache
def connection_kind(kind: str, type_: str) -> ConnectionKind:
    """The block type of a record kind and type, with how to build it and read its secrets back."""
    entry = _CONNECTIONS[(kind, type_)]
    module = import_module(entry.module)
    block_type = getattr(module, entry.class_name)
    if entry.build is None:  # our own blocks carry both as methods
        return ConnectionKind(block_type, block_type.from_settings, lambda block: block.credentials())
    return ConnectionKind(block_type, getattr(module, entry.build), getattr(module, entry.read))


def block_document_name(kind: str, record_id: str) -> str:
    """Block document names allow lower-case letters, digits and dashes only."""
    return f"modelpulse-{kind}-{record_id.replace('_', '-').lower()}"


def save_connection(
    kind: str, record_id: str, type_: str, config: dict[str, Any], credentials: dict[str, Any]
) -> Block:
    """Build the record's block from its config and credentials and save it (overwriting)."""
    block = connection_kind(kind, type_).build(config, credentials)
    save_block(block, kind, record_id)
    if (kind, type_) in _LEGACY_BLOCK_TYPES:  # an older copy of the secrets must not outlive a change
        _delete_documents(block_document_name(kind, record_id), {_LEGACY_BLOCK_TYPES[(kind, type_)].slug})
    return block


def save_block(block: Block, kind: str, record_id: str) -> None:
    """Save ``block`` as the record's document, overwriting it."""
    _registering(lambda: block.save(block_document_name(kind, record_id), overwrite=True))


def load_connection(kind: str, record_id: str, type_: str) -> Block:
    """Load the record's block; raises ``ValueError`` when the document is missing."""
    name = block_document_name(kind, record_id)
    try:
        return connection_kind(kind, type_).block_type.load(name)
    except ValueError:
        legacy = _LEGACY_BLOCK_TYPES.get((kind, type_))
        if legacy is None:
            raise
        return getattr(import_module(legacy.module), legacy.class_name).load(name)


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
    """Delete the record's block document, of whichever type of its kind; a missing one is already gone."""
    table = (*_CONNECTIONS.items(), *_LEGACY_BLOCK_TYPES.items())
    _delete_documents(block_document_name(kind, record_id), {entry.slug for (k, _), entry in table if k == kind})


def _delete_documents(name: str, slugs: set[str]) -> None:
    with get_client(sync_client=True) as client:
        for slug in slugs:
            try:
                document = client.read_block_document_by_name(name=name, block_type_slug=slug)
            except ObjectNotFound:
                continue
            client.delete_block_document(document.id)


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
