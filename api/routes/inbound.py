"""``/inbound/{platform}/{integration_id}``: events the registries push to ModelPulse.

Public routes (no API key): each delivery is authenticated by what only the platform and ModelPulse
share. MLflow signs its webhook deliveries with the secret ModelPulse registered the webhook with
(HMAC-SHA256, 5 minutes' timestamp tolerance); an EventBridge API destination sends the integration's
events API key in ``X-ModelPulse-Key``. A verified delivery is recorded in one transaction (its id,
then what it says; ``model.registered`` joins the outbox there) and answered at once; the webhook
dispatcher fans the event out after commit.

Answers: 200 with what was done (``recorded``, ``updated``, ``ignored``, ``duplicate``: a delivery id
seen before, e.g. a replay or AWS's second delivery of one event); 404 for an integration that does
not exist or does not take pushed events; 401 for a delivery that fails authentication (nothing is
recorded, and the answer says what failed, never anything about the secret); 413 for a body over
256 KiB (EventBridge's own event limit); 422 for an authenticated body that is not such an event.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, request

from api.db import db
from api.endpoint import endpoint
from api.errors import NotFound, Problem, Unprocessable
from api.schemas.registries import InboundOut
from api.services.inbound import (
    KEY_HEADER,
    DeliveryRejected,
    InboundOutcome,
    InvalidDelivery,
    pushed_events_secret,
    record_mlflow_delivery,
    record_sagemaker_event,
    sagemaker_key_matches,
    verified_mlflow_delivery_id,
)
from store.models import Integration

bp = Blueprint("inbound", __name__, url_prefix="/inbound")
log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


class InboundUnauthorized(Problem):
    status = 401
    title = "Unauthorized"


def _pushing_integration(integration_id: str, type_: str) -> Integration:
    """The integration if it takes pushed events of this platform; one 404 for every other case."""
    integration = None if "\x00" in integration_id else db().get(Integration, integration_id)
    if integration is None or integration.type != type_ or not integration.config.get("push_events"):
        raise NotFound("No integration takes pushed events at this address.")
    return integration


def _body() -> bytes:
    """The raw body (signatures are over its exact bytes), read no further than the limit."""
    too_large = Problem(
        f"A pushed event is at most {MAX_BODY_BYTES // 1024} KiB.", status=413, title="Content Too Large"
    )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    return body


def _json(body: bytes) -> object:
    if b"\\u0000" in body:  # no database column can store a NUL character
        raise InvalidDelivery("body", "must not contain the NUL character")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidDelivery("body", "is not valid JSON") from None


def _secret(integration: Integration) -> str:
    secret = pushed_events_secret(integration)
    if secret is None:  # push on, but no secret stored: nothing can be verified
        log.warning("integration %s takes pushed events but has no inbound secret in its block", integration.id)
        raise NotFound("No integration takes pushed events at this address.")
    return secret


def _answer(integration: Integration, outcome: InboundOutcome) -> InboundOut:
    db().commit()
    log.info("integration %s: pushed event %s (%s)", integration.id, outcome.status, outcome.detail)
    return InboundOut(status=outcome.status, detail=outcome.detail)


@bp.post("/mlflow/<integration_id>")
@endpoint(response=InboundOut, public=True, problems=(401, 404, 413, 422))
def mlflow_delivery(integration_id: str):
    """Receive an MLflow webhook delivery (MLflow 3.3+ model registry webhooks).

    Authenticated by `X-MLflow-Signature` (HMAC-SHA256 of `{X-MLflow-Delivery-Id}.{X-MLflow-Timestamp}.{body}`
    with the webhook's secret), `X-MLflow-Timestamp` within 5 minutes. `model_version.created` of a
    monitored model records the version and emits `model.registered` with `"source": "push"`; alias and
    tag events update the recorded version. A delivery id seen before is answered 200 and ignored.
    """
    integration = _pushing_integration(integration_id, "mlflow")
    body = _body()
    try:
        delivery_id = verified_mlflow_delivery_id(_secret(integration), request.headers, body)
    except DeliveryRejected as error:
        log.info("integration %s: MLflow delivery refused: %s", integration.id, error)
        raise InboundUnauthorized(f"The delivery could not be authenticated: {error}.") from None
    try:
        outcome = record_mlflow_delivery(db(), integration, delivery_id, _json(body))
    except InvalidDelivery as error:
        db().rollback()
        raise Unprocessable.field(error.field, error.message) from None
    return _answer(integration, outcome)


@bp.post("/sagemaker/<integration_id>")
@endpoint(response=InboundOut, public=True, problems=(401, 404, 413, 422))
def sagemaker_event(integration_id: str):
    """Receive a SageMaker event from an EventBridge API destination.

    Authenticated by the `X-ModelPulse-Key` header (the EventBridge connection's API key, the
    integration's `credentials.events_api_key`). "SageMaker Model Package State Change" of a
    monitored group records the version and emits `model.registered` with `"source": "push"`;
    "SageMaker Endpoint State Change" records the endpoint's status. An event id seen before is
    answered 200 and ignored.
    """
    integration = _pushing_integration(integration_id, "sagemaker")
    body = _body()
    if not sagemaker_key_matches(request.headers.get(KEY_HEADER), _secret(integration)):
        log.info("integration %s: SageMaker event refused: wrong or missing %s", integration.id, KEY_HEADER)
        raise InboundUnauthorized(f"The {KEY_HEADER} header is missing or does not match the integration's key.")
    try:
        outcome = record_sagemaker_event(db(), integration, _json(body))
    except InvalidDelivery as error:
        db().rollback()
        raise Unprocessable.field(error.field, error.message) from None
    return _answer(integration, outcome)
