"""Create, read, replace and delete records whose secrets live in a Prefect block.

Integrations and exports (and, with their own twists, webhooks) share one life cycle: the record's
non-secret fields go to our database, its credentials to a block document named after it, and the two
are written so that a failure on either side leaves neither half behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from prefect.exceptions import PrefectHTTPStatusError
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import Conflict, NotFound, ServiceUnavailable, validation_problem
from api.pagination import paginate
from api.schemas.common import MASK, PageQuery
from api.services.credential_origins import moves_origin, secrets_must_be_resent
from blocks.cache import forget
from blocks.connections import credentials_of, delete_connection, find_connection, save_connection
from store.ids import new_id
from store.models import utcnow

log = logging.getLogger(__name__)

PREFECT_ERRORS = (httpx.HTTPError, PrefectHTTPStatusError, RuntimeError)


def secrets_store_unavailable(error: Exception) -> ServiceUnavailable:
    log.error("Prefect block storage failed: %s", type(error).__name__)
    return ServiceUnavailable("The secret store (Prefect server) could not be reached; nothing was changed.")


def merge_credentials(stored: dict[str, Any], given: BaseModel | None) -> dict[str, Any]:
    """Stored secrets overlaid with the given ones; an omitted or masked field keeps its value, null clears it."""
    merged = {k: v for k, v in stored.items() if v is not None}
    if given is None:
        return merged
    for name in given.model_fields_set:
        value = getattr(given, name)
        if value == MASK:
            continue
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def kept_secrets(stored: dict[str, Any], given: BaseModel | None) -> list[str]:
    """The stored secrets ``merge_credentials`` would keep: omitted or sent as the mask."""
    sent = set() if given is None else {n for n in given.model_fields_set if getattr(given, n) != MASK}
    return [name for name, value in stored.items() if value is not None and name not in sent]


def _write_or_conflict(session: Session, name: str, write) -> None:  # noqa: ANN001
    try:
        write()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A resource named {name!r} already exists in this organization.") from None


def flush_or_conflict(session: Session, name: str) -> None:
    """Flush; the unique (organization, name) constraint turns a duplicate into a 409."""
    _write_or_conflict(session, name, session.flush)


def commit_or_conflict(session: Session, name: str) -> None:
    _write_or_conflict(session, name, session.commit)


@dataclass(frozen=True)
class Subscribed:
    """What a platform subscription made while saving a record: secrets for the record's block that
    the API never takes or shows (an MLflow webhook's signing secret), and how to undo it should the
    save fail after all."""

    secrets: dict[str, Any] = field(default_factory=dict)
    undo: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Previous:
    """A record as it was before a replace, with its block (``None`` if it had none)."""

    type: str
    config: dict[str, Any]
    push_state: dict[str, Any] | None
    block: Any


class PlatformSubscriptions(Protocol):
    """Work on the platform that goes with a record's life cycle (registering a webhook there)."""

    def subscribe(self, record: Any, credentials: dict[str, Any], previous: Previous | None) -> Subscribed:
        """Bring the platform in line with the record about to be saved; may raise a ``Problem``."""
        ...

    def unsubscribe(self, record: Any, block: Any) -> None:
        """The record and its block are going away: undo its subscription (best effort)."""
        ...


@dataclass(frozen=True)
class ConnectedRecords:
    """The life cycle of one kind of record (``integration``, ``export``) and its block."""

    kind: str
    model: type[Any]
    id_prefix: str
    create_schema: Any
    extra_fields: tuple[str, ...] = ()
    subscriptions: PlatformSubscriptions | None = None

    def get(self, session: Session, organization_id: str, record_id: str) -> Any:
        record = session.get(self.model, record_id)
        if record is None or record.organization_id != organization_id:
            raise NotFound(f"No {self.kind} {record_id!r} in this organization.")
        return record

    def list(self, session: Session, organization_id: str, page: PageQuery) -> tuple[list[Any], str | None]:
        statement = select(self.model).where(self.model.organization_id == organization_id)
        return paginate(session, statement, self.model.id, page)

    def create(self, session: Session, organization_id: str, body: Any) -> Any:
        credentials = body.credentials.model_dump(exclude_none=True)
        record = self.model(
            id=new_id(self.id_prefix),
            organization_id=organization_id,
            **self._columns(body, credentials),
        )
        session.add(record)
        flush_or_conflict(session, body.name)
        subscribed = self._subscribe(session, record, credentials, None)
        try:
            self._save_block(session, record, body, credentials | subscribed.secrets)
            try:
                commit_or_conflict(session, body.name)
            except Exception:
                delete_connection(self.kind, record.id)
                raise
        except Exception:
            subscribed.undo()
            raise
        return record

    def replace(self, session: Session, record: Any, body: Any) -> Any:
        try:
            block = find_connection(self.kind, record.id, record.type)
        except PREFECT_ERRORS as error:
            raise secrets_store_unavailable(error) from None
        previous = Previous(record.type, dict(record.config), getattr(record, "push_state", None), block)
        stored = credentials_of(self.kind, record.type, block) if body.type == record.type else {}
        # Before anything is sent anywhere (a platform subscription, a sink's templates).
        if stored and moves_origin(record.type, record.config, body.config.model_dump(mode="json")):
            secrets_must_be_resent(f"credentials.{name}" for name in kept_secrets(stored, body.credentials))
        credentials = merge_credentials(stored, body.credentials)
        document = body.model_dump(mode="json", exclude={"credentials"}) | {"credentials": credentials}
        try:
            full = TypeAdapter(self.create_schema).validate_python(document)
        except ValidationError as error:
            raise validation_problem(error, union_tag=body.type) from None
        credentials = full.credentials.model_dump(exclude_none=True)
        for column, value in self._columns(full, credentials).items():
            setattr(record, column, value)
        # Readers cache secrets per version of the row; a PUT may change them without changing a column.
        record.updated_at = utcnow()
        flush_or_conflict(session, full.name)
        subscribed = self._subscribe(session, record, credentials, previous)
        try:
            self._save_block(session, record, full, credentials | subscribed.secrets)
            commit_or_conflict(session, full.name)
        except Exception:
            subscribed.undo()
            raise
        return record

    def delete(self, session: Session, record: Any) -> None:
        """The block (the secret) goes first: a failure leaves the record whole, never a dangling secret.

        A platform subscription goes next, with the credentials read before (best effort: a platform
        that cannot be reached does not keep the record alive).
        """
        try:
            block = find_connection(self.kind, record.id, record.type) if self.subscriptions is not None else None
            delete_connection(self.kind, record.id)
        except PREFECT_ERRORS as error:
            raise secrets_store_unavailable(error) from None
        forget(self.kind, record.id)  # this process's client of the deleted credentials
        if self.subscriptions is not None:
            self.subscriptions.unsubscribe(record, block)
        session.delete(record)
        session.commit()

    def _subscribe(
        self, session: Session, record: Any, credentials: dict[str, Any], previous: Previous | None
    ) -> Subscribed:
        if self.subscriptions is None:
            return Subscribed()
        try:
            return self.subscriptions.subscribe(record, credentials, previous)
        except Exception:
            session.rollback()
            raise

    def _columns(self, body: Any, credentials: dict[str, Any]) -> dict[str, Any]:
        columns = {
            "name": body.name,
            "type": body.type,
            "project_id": body.project_id,
            "config": body.config.model_dump(mode="json"),
            "secret_fields": sorted(credentials),
        }
        for name in self.extra_fields:
            value = getattr(body, name)
            columns[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        return columns

    def _save_block(self, session: Session, record: Any, body: Any, credentials: dict[str, Any]) -> None:
        try:
            save_connection(self.kind, record.id, body.type, record.config, credentials)
        except PREFECT_ERRORS as error:
            session.rollback()
            raise secrets_store_unavailable(error) from None
        forget(self.kind, record.id)  # the client of the credentials just replaced
