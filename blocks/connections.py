"""Which block holds the secrets of which record, and how to save, read and delete it.

Every integration, export and webhook owns exactly one block document, named from the record
(``modelpulse-<kind>-<record id>``). Our database keeps only the names of the secret fields that are
set; the values exist only in the block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect_aws import AwsCredentials
from prefect_gcp import GcpCredentials

from blocks.aws import aws_credentials_from_settings, aws_credentials_values
from blocks.datadog import DatadogConnection
from blocks.elasticsearch import ElasticsearchConnection
from blocks.gcp import gcp_credentials_from_settings, gcp_credentials_values
from blocks.mlflow import MlflowConnection
from blocks.splunk import SplunkHecConnection
from blocks.webhook import WebhookSecrets


class ConnectionKind(NamedTuple):
    block_type: type[Block]
    build: Callable[[dict[str, Any], dict[str, Any]], Block]
    read: Callable[[Any], dict[str, Any]]


def _own(block_type: Any) -> ConnectionKind:
    return ConnectionKind(block_type, block_type.from_settings, lambda block: block.credentials())


CONNECTIONS: dict[tuple[str, str], ConnectionKind] = {
    ("integration", "mlflow"): _own(MlflowConnection),
    ("integration", "sagemaker"): ConnectionKind(
        AwsCredentials, aws_credentials_from_settings, aws_credentials_values
    ),
    ("integration", "vertex_ai"): ConnectionKind(
        GcpCredentials, gcp_credentials_from_settings, gcp_credentials_values
    ),
    ("export", "elasticsearch"): _own(ElasticsearchConnection),
    ("export", "splunk"): _own(SplunkHecConnection),
    ("export", "datadog"): _own(DatadogConnection),
    ("webhook", "webhook"): _own(WebhookSecrets),
}

BLOCK_TYPES: tuple[type[Block], ...] = (
    MlflowConnection,
    ElasticsearchConnection,
    SplunkHecConnection,
    DatadogConnection,
    WebhookSecrets,
)


def block_document_name(kind: str, record_id: str) -> str:
    """Block document names allow lower-case letters, digits and dashes only."""
    return f"modelpulse-{kind}-{record_id.replace('_', '-').lower()}"


def save_connection(
    kind: str, record_id: str, type_: str, config: dict[str, Any], credentials: dict[str, Any]
) -> Block:
    """Build the record's block from its config and credentials and save it (overwriting)."""
    block = CONNECTIONS[(kind, type_)].build(config, credentials)
    block.save(block_document_name(kind, record_id), overwrite=True)
    return block


def load_connection(kind: str, record_id: str, type_: str) -> Block:
    """Load the record's block; raises ``ValueError`` when the document is missing."""
    return CONNECTIONS[(kind, type_)].block_type.load(block_document_name(kind, record_id))


def read_credentials(kind: str, record_id: str, type_: str) -> dict[str, Any]:
    """The stored secret values of a record (for merging a PUT), keyed as the API names them."""
    try:
        block = load_connection(kind, record_id, type_)
    except ValueError:
        return {}
    return CONNECTIONS[(kind, type_)].read(block)


def delete_connection(kind: str, record_id: str) -> None:
    """Delete the record's block document; a missing one is already gone."""
    name = block_document_name(kind, record_id)
    with get_client(sync_client=True) as client:
        for block_type in {c.block_type for (k, _), c in CONNECTIONS.items() if k == kind}:
            try:
                document = client.read_block_document_by_name(
                    name=name, block_type_slug=block_type.get_block_type_slug()
                )
            except ObjectNotFound:
                continue
            client.delete_block_document(document.id)


def register_block_types() -> None:
    """Register our block types (and the AWS/GCP ones) with the Prefect server."""
    for block_type in (*BLOCK_TYPES, AwsCredentials, GcpCredentials):
        block_type.register_type_and_schema()
