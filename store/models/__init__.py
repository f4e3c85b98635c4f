"""Every table of the ModelPulse database, importable from one place (Alembic reads ``Base.metadata``)."""

from store.models.base import Base, utcnow
from store.models.connection import ConnectionRecord
from store.models.events import Event
from store.models.export_runs import ExportRun, ExportRunStream, ExportWatermark, RejectedRecord
from store.models.exports import Export
from store.models.integrations import Integration
from store.models.organizations import ApiKey, Organization
from store.models.telemetry import DriftMetric, InferenceLog
from store.models.webhooks import Webhook

__all__ = [
    "ApiKey",
    "ConnectionRecord",
    "Base",
    "DriftMetric",
    "Event",
    "Export",
    "ExportRun",
    "ExportRunStream",
    "ExportWatermark",
    "InferenceLog",
    "Integration",
    "Organization",
    "RejectedRecord",
    "Webhook",
    "utcnow",
]
