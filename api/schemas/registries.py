"""Bodies and answers of the registry endpoints under ``.../integrations/{integration_id}``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from api.schemas.common import Name, StrictModel

Tags = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=256)]],
    Field(max_length=50, description="Tags (MLflow), package tags (SageMaker) or labels (Vertex AI)."),
]
Uri = Annotated[str, Field(min_length=1, max_length=2048)]


class _RegistrationBase(StrictModel):
    name: Name
    description: str | None = Field(default=None, max_length=5000)
    tags: Tags = Field(default_factory=dict)


class MlflowRegistration(_RegistrationBase):
    source: Uri = Field(description="Model URI, e.g. s3://bucket/model or runs:/<run id>/model.")


class SagemakerRegistration(_RegistrationBase):
    model_package_group: Annotated[str, Field(max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")] = Field(
        description="The model package group (created if missing)."
    )
    image_uri: Uri = Field(description="Inference container image.")
    model_data_url: Uri = Field(description="s3:// URL of the model artifacts.")
    execution_role_arn: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$",
        description="Also create a SageMaker model named `name` from the package, run with this IAM role.",
    )


class VertexAiRegistration(_RegistrationBase):
    artifact_uri: Uri = Field(description="gs:// directory of the model artifacts.")
    serving_container_image_uri: Uri = Field(description="Serving container image.")


REGISTRATION_BODIES: dict[str, type[_RegistrationBase]] = {
    "mlflow": MlflowRegistration,
    "sagemaker": SagemakerRegistration,
    "vertex_ai": VertexAiRegistration,
}
# Which body applies depends on the integration's type, known only once the integration is loaded,
# so the view validates against REGISTRATION_BODIES[type]; the document shows all three.
RegistrationBody = Annotated[
    dict[str, Any],
    WithJsonSchema({"oneOf": [body.model_json_schema() for body in REGISTRATION_BODIES.values()]}),
]


class ModelVersionOut(BaseModel):
    name: str
    version: str | None
    external_id: str
    source: str | None
    status: str | None
    aliases: list[str]
    tags: dict[str, str]
    created_at: datetime | None
    endpoints: list[str]


class RegisteredModelOut(ModelVersionOut):
    monitored_model_id: str
    flow_run_id: str


class RunAccepted(BaseModel):
    flow_run_id: str
    status: str = Field(description="The flow run's state when answering.")
    status_url: str


class RegistrationStatus(BaseModel):
    flow_run_id: str
    status: str = Field(description="The flow run's state, e.g. RUNNING, COMPLETED, FAILED.")
    model: RegisteredModelOut | None = Field(description="The registered model once recorded.")
    error: str | None = None


class StatusChangeOut(BaseModel):
    status: str
    deployments: list[dict[str, Any]]
    observed_at: datetime


class EndpointOut(BaseModel):
    name: str
    status: str
    external_id: str
    deployments: list[dict[str, Any]] = Field(
        description="Variants (SageMaker) or deployed models (Vertex AI): model, version, traffic %."
    )
    metrics: dict[str, Any] | None = Field(description="SageMaker: the last hour of CloudWatch metrics.")
    created_at: datetime | None
    updated_at: datetime | None
    status_changes: list[StatusChangeOut] = Field(description="Latest recorded changes, newest first.")


class PushCheckOut(BaseModel):
    ok: bool
    webhook_status: str | None = Field(default=None, description="MLflow: ACTIVE, DISABLED or MISSING.")
    delivery_status: int | None = Field(
        default=None, description="MLflow: the HTTP status this API gave MLflow's signed test delivery."
    )
    message: str


class ConnectionTestOut(BaseModel):
    ok: Literal[True]
    message: str = Field(description="What the platform answered.")
    push: PushCheckOut | None = Field(
        default=None, description="With config.push_events: whether the platform's pushed events reach ModelPulse."
    )


class MonitoredVersionOut(BaseModel):
    id: str
    name: str
    version: str
    external_id: str
    source: str = Field(description="How ModelPulse learnt of it: api (registered here), push or sync.")
    aliases: list[str]
    tags: dict[str, Any]
    registered_at: datetime
    labels_updated_at: datetime | None


class InboundOut(BaseModel):
    status: Literal["recorded", "updated", "ignored", "duplicate"] = Field(
        description="recorded: a new version (model.registered emitted) or endpoint status; updated: aliases or "
        "tags; ignored: nothing to do (an unmonitored model, an event ModelPulse does not act on); duplicate: "
        "this delivery id was received before."
    )
    detail: str
