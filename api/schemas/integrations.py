"""Integration bodies: one model per registry type, chosen by ``type``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import (
    Name,
    OutboundURL,
    ProjectId,
    RecordOut,
    SecretText,
    StrictModel,
    optional_fields,
    reachable,
    serialised_at_most,
)

SERVICE_ACCOUNT_MAX_BYTES = 64 * 1024  # a key file is about 2.4 KB (RSA 2048) to 3.3 KB (RSA 4096)
SyncInterval = Annotated[int, Field(ge=60, le=7 * 86400, description="Seconds between registry syncs.")]
EventsApiKey = Annotated[str, Field(min_length=16, max_length=512, json_schema_extra={"writeOnly": True})]


class MlflowConfig(StrictModel):
    tracking_uri: OutboundURL = Field(description="e.g. http://mlflow-server:5000")
    sync_interval_seconds: SyncInterval = 900
    push_events: bool = Field(
        default=False,
        description="Register an MLflow webhook (MLflow 3.3+) that pushes new versions, aliases and tags to "
        "ModelPulse within seconds; the sync stays on as reconciliation. Needs MODELPULSE_PUBLIC_URL and "
        "credentials allowed to manage webhooks (an admin under MLflow's basic-auth app).",
    )


class MlflowCredentials(StrictModel):
    username: str | None = Field(default=None, max_length=200)
    password: SecretText | None = None
    token: SecretText | None = None


class SagemakerConfig(StrictModel):
    region_name: str = Field(max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$", description="e.g. us-east-1")
    endpoint_url: OutboundURL | None = Field(default=None, description="A VPC endpoint, if any.")
    sync_interval_seconds: SyncInterval = 900
    push_events: bool = Field(
        default=False,
        description="Accept SageMaker's EventBridge events at /inbound/sagemaker/{integration_id} (an "
        "EventBridge API destination whose connection sends `credentials.events_api_key`); the sync "
        "stays on as reconciliation.",
    )


class SagemakerCredentials(StrictModel):
    aws_access_key_id: SecretText
    aws_secret_access_key: SecretText
    aws_session_token: SecretText | None = None
    events_api_key: EventsApiKey | None = Field(
        default=None,
        description="The API key the EventBridge connection sends in `X-ModelPulse-Key` (16-512 characters, "
        "e.g. `openssl rand -base64 32`); required with `config.push_events`.",
    )


class VertexAiConfig(StrictModel):
    project_id: str = Field(min_length=1, max_length=100, description="Google Cloud project id.")
    location: str = Field(max_length=64, pattern=r"^[a-z]+(-[a-z0-9]+)+$", description="e.g. us-central1")
    api_endpoint: str | None = Field(
        default=None,
        max_length=300,
        pattern=r"^(https?://)?[A-Za-z0-9.-]+(:\d{1,5})?/?$",
        description="Regional API host, e.g. us-central1-aiplatform.googleapis.com",
    )
    sync_interval_seconds: SyncInterval = 900

    @field_validator("api_endpoint")
    @classmethod
    def _reachable_endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is not None:
            reachable(endpoint if endpoint.startswith(("http://", "https://")) else f"https://{endpoint}")
        return endpoint


class VertexAiCredentials(StrictModel):
    service_account_info: Annotated[dict[str, Any], *serialised_at_most(SERVICE_ACCOUNT_MAX_BYTES)] = Field(
        description="The service account key JSON (type, client_email, private_key, token_uri...); at most "
        "64 KiB serialised.",
        json_schema_extra={"writeOnly": True},
    )

    @field_validator("service_account_info")
    @classmethod
    def _looks_like_a_key(cls, info: dict[str, Any]) -> dict[str, Any]:
        from google.oauth2.service_account import Credentials

        missing = [k for k in ("client_email", "private_key", "token_uri") if not isinstance(info.get(k), str)]
        if missing:
            raise ValueError(f"a service account key needs {', '.join(missing)}")
        try:
            Credentials.from_service_account_info(info)
        except ValueError:
            # Never echo the key material: say what is wrong, not what was sent.
            raise ValueError("private_key is not a valid PEM-encoded service account key") from None
        try:
            reachable(info["token_uri"])
        except ValueError as error:
            raise ValueError(f"token_uri: {error}") from None
        return info


class _IntegrationBase(StrictModel):
    name: Name
    project_id: ProjectId | None = None


class MlflowIntegration(_IntegrationBase):
    type: Literal["mlflow"]
    config: MlflowConfig
    credentials: MlflowCredentials = Field(default_factory=MlflowCredentials)


class SagemakerIntegration(_IntegrationBase):
    type: Literal["sagemaker"]
    config: SagemakerConfig
    credentials: SagemakerCredentials


class VertexAiIntegration(_IntegrationBase):
    type: Literal["vertex_ai"]
    config: VertexAiConfig
    credentials: VertexAiCredentials


IntegrationIn = Annotated[
    MlflowIntegration | SagemakerIntegration | VertexAiIntegration, Field(discriminator="type")
]


class MlflowIntegrationUpdate(MlflowIntegration):
    credentials: optional_fields(MlflowCredentials) = None  # type: ignore[valid-type]


class SagemakerIntegrationUpdate(SagemakerIntegration):
    credentials: optional_fields(SagemakerCredentials) = None  # type: ignore[valid-type]


class VertexAiIntegrationUpdate(VertexAiIntegration):
    credentials: optional_fields(VertexAiCredentials) = None  # type: ignore[valid-type]


IntegrationUpdate = Annotated[
    MlflowIntegrationUpdate | SagemakerIntegrationUpdate | VertexAiIntegrationUpdate,
    Field(discriminator="type"),
]


class PushOut(BaseModel):
    """Push events of the integration: where the platform posts them and, for MLflow, its webhook."""

    enabled: bool
    inbound_url: str | None = Field(
        description="Where the platform posts (MODELPULSE_PUBLIC_URL + /inbound/{type}/{id}; the path alone when "
        "MODELPULSE_PUBLIC_URL is unset); null when push is not available for the type."
    )
    key_header: str | None = Field(default=None, description="SageMaker: the header carrying events_api_key.")
    mlflow_webhook_id: str | None = Field(default=None, description="MLflow: the webhook ModelPulse registered.")
    mlflow_webhook_status: str | None = Field(
        default=None, description="MLflow: ACTIVE or DISABLED as MLflow last reported it (refreshed by POST .../test)."
    )
    checked_at: datetime | None = Field(
        default=None, description="When the MLflow webhook was last written or checked."
    )


class IntegrationOut(RecordOut):
    name: str
    type: str
    project_id: str | None
    config: dict[str, Any]
    credentials: dict[str, str] = Field(description='Each stored secret as "********".')
    status: str
    status_detail: str | None
    push: PushOut
