"""Integrations' stored record set: the row, its credentials' block document and its MLflow push webhook."""

from __future__ import annotations

from api.schemas.integrations import IntegrationIn
from api.services.connected_records import ConnectedRecords
from api.services.registry_push import IntegrationPushSubscriptions
from store.models import Integration

integrations = ConnectedRecords(
    "integration", Integration, "int", IntegrationIn, subscriptions=IntegrationPushSubscriptions()
)
