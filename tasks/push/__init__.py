"""Inbound push events from the registries: what a verified delivery changes in ModelPulse.

The API's inbound routes (``/inbound/<platform>/<integration id>``) authenticate a delivery, then
hand it to ``apply_mlflow_delivery`` or ``apply_sagemaker_event`` inside their own transaction. Each
takes the delivery's id first (``store.registry.claim_inbound_receipt``, a database claim shared by
every API process), so a replay or a duplicate changes nothing; then it records what the event says
for that one model or endpoint, and ``model.registered`` joins the outbox in that same transaction.
Nothing here calls the platform: a delivery is answered in milliseconds, within the platforms'
timeouts (MLflow 30 s, EventBridge API destinations 5 s).

Exceptions::

    InvalidDelivery      the body is not the event shape the platform sends (a 422)
"""

from __future__ import annotations

from tasks.push.outcome import InboundOutcome, InvalidDelivery
from tasks.push.secrets import inbound_secret

__all__ = ["InboundOutcome", "InvalidDelivery", "inbound_secret"]
