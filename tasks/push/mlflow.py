"""MLflow webhook deliveries: a new version of a monitored model, its aliases and its tags.

MLflow's body is ``{"entity", "action", "timestamp", "data"}``; ``data`` per event as in
``mlflow/webhooks/types.py``. A version is recorded only for a model this integration monitors (one
with a version recorded already), exactly as the sync decides, so push and poll agree on what is
monitored and the poll can stand in for any delivery MLflow dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from store.models import Integration
from store.registry import (
    claim_inbound_receipt,
    delete_version_alias,
    is_monitored,
    record_model_version,
    set_version_alias,
    set_version_tag,
)
from tasks.push.outcome import InboundOutcome, InvalidDelivery
from tasks.registries.mlflow import version_uri


class _Data(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True, extra="ignore")

    name: str = Field(min_length=1, max_length=500)


class _VersionCreated(_Data):
    version: str = Field(min_length=1, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict)


class _AliasCreated(_Data):
    alias: str = Field(min_length=1, max_length=256)
    version: str = Field(min_length=1, max_length=200)


class _AliasDeleted(_Data):
    alias: str = Field(min_length=1, max_length=256)


class _TagSet(_Data):
    version: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(max_length=5000)


class _TagDeleted(_Data):
    version: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=250)


_SHAPES: dict[str, type[_Data]] = {
    "model_version.created": _VersionCreated,
    "model_version_alias.created": _AliasCreated,
    "model_version_alias.deleted": _AliasDeleted,
    "model_version_tag.set": _TagSet,
    "model_version_tag.deleted": _TagDeleted,
}


def parse_delivery(payload: Any) -> tuple[str, dict[str, Any]]:
    """The event name (``entity.action``) and ``data`` of a delivery's parsed JSON body.

    Raises:
        InvalidDelivery: not MLflow's ``{"entity", "action", "data"}`` shape.
    """
    if not isinstance(payload, dict):
        raise InvalidDelivery("body", "must be a JSON object")
    for name in ("entity", "action"):
        if not isinstance(payload.get(name), str):
            raise InvalidDelivery(name, "must be a string")
    if not isinstance(payload.get("data"), dict):
        raise InvalidDelivery("data", "must be an object")
    return f"{payload['entity']}.{payload['action']}", payload["data"]


def apply_mlflow_delivery(
    session: Session, integration: Integration, delivery_id: str, event: str, data: dict[str, Any]
) -> InboundOutcome:
    """Record what one verified delivery says, once per delivery id (the caller commits).

    Raises:
        InvalidDelivery: ``data`` lacks what the event carries (nothing is recorded).
    """
    shape = _SHAPES.get(event)
    parsed = None
    if shape is not None:
        try:
            parsed = shape.model_validate(data)
        except ValidationError as error:
            first = error.errors(include_url=False, include_input=False)[0]
            location = ".".join(str(part) for part in ("data", *first["loc"]))
            raise InvalidDelivery(location, first["msg"]) from None
    if not claim_inbound_receipt(session, integration.id, delivery_id):
        return InboundOutcome("duplicate", f"delivery {delivery_id} was received before")
    if parsed is None:
        return InboundOutcome("ignored", f"{event} is not an event ModelPulse acts on")
    return _apply(session, integration, event, parsed)


def _apply(session: Session, integration: Integration, event: str, data: Any) -> InboundOutcome:
    name = data.name
    if event == "model_version.created":
        if not is_monitored(session, integration.id, name):
            return InboundOutcome("ignored", f"model {name!r} is not monitored by this integration")
        recorded = record_model_version(
            session, integration, name, data.version, version_uri(name, data.version), source="push", tags=data.tags
        )
        if recorded is None:
            return InboundOutcome("ignored", f"version {data.version} of {name!r} is recorded already")
        return InboundOutcome("recorded", f"version {data.version} of {name!r} recorded; model.registered emitted")
    if event == "model_version_alias.created":
        changed = set_version_alias(session, integration.id, name, data.alias, data.version)
        what = f"alias {data.alias!r} -> version {data.version} of {name!r}"
    elif event == "model_version_alias.deleted":
        changed = delete_version_alias(session, integration.id, name, data.alias)
        what = f"alias {data.alias!r} of {name!r} removed"
    else:
        value = data.value if event == "model_version_tag.set" else None
        changed = set_version_tag(session, integration.id, name, data.version, data.key, value)
        what = f"tag {data.key!r} of version {data.version} of {name!r} {'set' if value is not None else 'deleted'}"
    if not changed:
        return InboundOutcome("ignored", f"no recorded version affected ({what})")
    return InboundOutcome("updated", what)
