"""Every table of the ModelPulse database, importable from one place (Alembic reads ``Base.metadata``)."""

from store.models.base import Base, utcnow
from store.models.connection import ConnectionRecord
from store.models.deliveries import Delivery, DeliveryAttempt
from store.models.events import Event
from store.models.exports import Export
from store.models.integrations import Integration
from store.models.organizations import ApiKey, Organization
from store.models.telemetry import DriftMetric, InferenceLog
from store.models.webhooks import Webhook

__all__ = [
    "ApiKey",
    "ConnectionRecord",
    "Base",
    "Delivery",
    "DeliveryAttempt",
    "DriftMetric",
    "Event",
    "Export",
    "InferenceLog",
    "Integration",
    "Organization",
    "Webhook",
    "utcnow",
]
