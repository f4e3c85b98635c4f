"""Elasticsearch connection block: URL, basic auth and TLS verification for the official client."""

from __future__ import annotations

from typing import Any

from elastic_transport import NodeConfig, Urllib3HttpNode
from elasticsearch import Elasticsearch
from elasticsearch.serializer import OrjsonSerializer
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.cache import cached_client
from blocks.egress.urllib3_pools import guard_pool


class GuardedUrllib3HttpNode(Urllib3HttpNode):
    """The client's default node, its pool's connections checked against the egress policy."""

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        guard_pool(self.pool)


class ElasticsearchConnection(Block):
    """Where and how to reach an Elasticsearch cluster.

    Example:
        ```python
        from blocks.elasticsearch import ElasticsearchConnection
        client = ElasticsearchConnection.load("modelpulse-export-exp-01...").get_client()
        ```
    """

    _block_type_name = "ModelPulse Elasticsearch Connection"
    _block_type_slug = "modelpulse-elasticsearch-connection"
    _description = "Elasticsearch URL and basic-auth credentials for ModelPulse exports."

    url: str = Field(title="Elasticsearch URL", description="e.g. https://es.example.com:9200")
    username: str | None = Field(default=None, title="Username")
    password: SecretStr | None = Field(default=None, title="Password")
    verify_ssl: bool = Field(default=True, title="Verify SSL", description="Verify TLS certificates.")

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> ElasticsearchConnection:
        return cls(
            url=config["url"],
            username=credentials.get("username"),
            password=credentials.get("password"),
            verify_ssl=config.get("verify_ssl", True),
        )

    def credentials(self) -> dict[str, Any]:
        """The secret values, keyed as the API names them."""
        return {
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
        }

    def get_client(self, **options: Any) -> Elasticsearch:
        """An `Elasticsearch` client, cached per block content and options."""
        return cached_client(self, options, self._make_client)

    def _make_client(self, options: dict[str, Any]) -> Elasticsearch:
        auth = None
        if self.username is not None and self.password is not None:
            auth = (self.username, self.password.get_secret_value())
        # orjson parses the answers (a 500-item bulk answer, every page); the client maps the
        # compatibility mime types (application/vnd.elasticsearch+json) to it as well.
        return Elasticsearch(
            self.url,
            basic_auth=auth,
            verify_certs=self.verify_ssl,
            serializers={"application/json": OrjsonSerializer()},
            node_class=GuardedUrllib3HttpNode,
            **options,
        )
