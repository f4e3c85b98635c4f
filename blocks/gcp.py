"""Vertex AI integrations reuse ``prefect_gcp.GcpCredentials``; this maps our fields onto it.

The Vertex AI clients are ``google.cloud.aiplatform_v1`` GAPIC clients over REST. Their credentials
come from the block's service-account JSON, whose own ``token_uri`` is where tokens are minted
(google-auth reads it from the JSON), and their endpoint is ``<location>-aiplatform.googleapis.com``
unless the integration's ``config.api_endpoint`` says otherwise (a private endpoint, or a test fake;
an ``http://`` prefix there switches the transport to plain HTTP).
"""

from __future__ import annotations

from typing import Any

from google.cloud.aiplatform_v1 import EndpointServiceClient, ModelServiceClient
from google.cloud.aiplatform_v1.services.endpoint_service.transports.rest import EndpointServiceRestTransport
from google.cloud.aiplatform_v1.services.model_service.transports.rest import ModelServiceRestTransport
from prefect_gcp import GcpCredentials

from blocks.cache import cached_client
from blocks.egress.urllib3_pools import guard_requests_session


def gcp_credentials_from_settings(config: dict[str, Any], credentials: dict[str, Any]) -> GcpCredentials:
    """Build the block from an integration's config (project) and service-account JSON."""
    return GcpCredentials(service_account_info=credentials["service_account_info"], project=config["project_id"])


def gcp_credentials_values(block: GcpCredentials) -> dict[str, Any]:
    info = block.service_account_info
    return {"service_account_info": info.get_secret_value() if info else None}


def vertex_api_endpoint(location: str, api_endpoint: str | None = None) -> str:
    """The regional Vertex AI endpoint, or the configured override."""
    return api_endpoint or f"{location}-aiplatform.googleapis.com"


def _credentials(block: GcpCredentials) -> Any:
    # GAPIC clients built from a transport *name* switch service-account credentials to self-signed
    # JWTs, which never visit the token endpoint; building the REST transport ourselves keeps the
    # OAuth flow against the key's own ``token_uri``.
    return block.get_credentials_from_service_account().with_always_use_jwt_access(False)


def _vertex_client(
    block: GcpCredentials, location: str, api_endpoint: str | None, client_type: Any, transport_type: Any
) -> Any:
    host = vertex_api_endpoint(location, api_endpoint)
    return cached_client(
        block,
        {"api_endpoint": host, "client": client_type.__name__},
        lambda _options: _guarded(client_type(transport=transport_type(host=host, credentials=_credentials(block)))),
    )


def _guarded(client: Any) -> Any:
    """The client, its API calls and its token requests (to the key's ``token_uri``) checked against
    the egress policy at every connection."""
    session = client._transport._session  # google.auth.transport.requests.AuthorizedSession
    guard_requests_session(session)
    guard_requests_session(session._auth_request.session)
    return client


def vertex_model_client(block: GcpCredentials, location: str, api_endpoint: str | None = None) -> ModelServiceClient:
    """A ``ModelServiceClient`` (REST) for ``location``, cached per block content and endpoint."""
    return _vertex_client(block, location, api_endpoint, ModelServiceClient, ModelServiceRestTransport)


def vertex_endpoint_client(
    block: GcpCredentials, location: str, api_endpoint: str | None = None
) -> EndpointServiceClient:
    """An ``EndpointServiceClient`` (REST) for ``location``, cached per block content and endpoint."""
    return _vertex_client(block, location, api_endpoint, EndpointServiceClient, EndpointServiceRestTransport)
