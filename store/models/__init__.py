"""Every table of the ModelPulse database, importable from one place (Alembic reads ``Base.metadata``)."""

from store.models.base import Base, utcnow
from store.models.connection import ConnectionRecord
from store.models.deliveries import Delivery, DeliveryAttempt, WebhookCooldown
from store.models.events import Event
from store.models.export_runs import ExportRun, ExportRunStream, ExportWatermark, RejectedRecord
from store.models.exports import Export
from store.models.integrations import Integration
from store.models.monitoring import DriftCheck, Monitor, Recommendation, Threshold, ThresholdState
from store.models.organizations import ApiKey, ApiKeyRequestCount, Organization
from store.models.registry import EndpointStatusChange, InboundReceipt, MonitoredModel, RegistrySyncState
from store.models.remediations import Remediation
from store.models.silences import Silence
from store.models.telemetry import DriftMetric, InferenceLog
from store.models.webhooks import Webhook

__all__ = [
    "ApiKey",
    "ApiKeyRequestCount",
    "Base",
    "ConnectionRecord",
    "Delivery",
    "DeliveryAttempt",
    "DriftCheck",
    "DriftMetric",
    "EndpointStatusChange",
    "Event",
    "Export",
    "ExportRun",
    "ExportRunStream",
    "ExportWatermark",
    "InboundReceipt",
    "InferenceLog",
    "Integration",
    "Monitor",
    "MonitoredModel",
    "Organization",
    "Recommendation",
    "RegistrySyncState",
    "RejectedRecord",
    "Remediation",
    "Silence",
    "Threshold",
    "ThresholdState",
    "Webhook",
    "WebhookCooldown",
    "utcnow",
]
