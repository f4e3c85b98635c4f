"""Bearer-key authentication, scoped to the organization in the path.

A key used on another organization's path gets 404, never 403: the API does not confirm that the
other organization exists. On its own organization's path, a key whose role may not call the
operation gets 403 (``api/permissions.py``). Each authenticated request counts against its key's
rate limit (api/rate_limits.py); a key's ``last_used_at`` is written at most about once a minute,
after the response has been sent, and only for requests on the key's own organization.

A presented key costs one indexed read (by its hash; unknown keys are not cached, api/key_cache.py).
A refused one (unknown, revoked, expired) also counts against the client address, which is answered
429 before any lookup once it has had ``MODELPULSE_AUTH_FAILURES_PER_MINUTE`` refusals this minute.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Blueprint, Flask, Response, after_this_request, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from api.db import db
from api.errors import NotFound, Unauthorized
from api.key_cache import KeyCache
from api.permissions import require_role
from api.rate_limits import count_authentication_failure, enforce_rate_limit, refuse_failing_client
from store.db import session_scope
from store.models import utcnow
from store.organizations import KeyRecord, record_key_use

log = logging.getLogger(__name__)

KEY_USE_GRANULARITY = timedelta(minutes=1)
_REFUSALS = {
    "invalid": "The API key is invalid.",
    "revoked": "The API key has been revoked.",
    "expired": "The API key has expired.",
}


def authenticated_key() -> KeyRecord:
    """The request's bearer key, if it is active; raises ``Unauthorized`` (saying whether the key is
    unknown, revoked or expired, and nothing else), or ``TooManyAuthenticationFailures`` before any
    lookup when the client address had too many keys refused this minute."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized()
    refuse_failing_client()
    record = current_app.extensions["key_cache"].lookup(db(), key)
    status = record.status(utcnow()) if record is not None else "invalid"
    if status != "active":
        count_authentication_failure()
        raise Unauthorized(_REFUSALS[status])
    return record


def authenticated_organization() -> str:
    """The organization id of the request's bearer key; raises ``Unauthorized``."""
    return authenticated_key().organization_id


class KeyUseLog:
    """When this process last wrote each key's ``last_used_at``, so it writes at most once a minute."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, key_id: str) -> bool:
        """Whether this request should write the key's last use (and, if so, no other for a minute)."""
        now = time.monotonic()
        with self._lock:
            last = self._written.get(key_id)
            if last is not None and now - last < KEY_USE_GRANULARITY.total_seconds():
                return False
            self._written[key_id] = now
            return True

    def write(self, key_id: str) -> None:
        """Record the use (skipped by the database when another process wrote it within the minute)."""
        try:
            with session_scope(self.database_url) as session:
                record_key_use(session, key_id, utcnow(), KEY_USE_GRANULARITY)
        except SQLAlchemyError:
            log.warning("could not record the last use of key %s", key_id, exc_info=True)
            with self._lock:
                self._written.pop(key_id, None)


def _note_key_use(key_id: str) -> None:
    uses: KeyUseLog = current_app.extensions["key_use_log"]
    if not uses.claim(key_id):
        return

    @after_this_request
    def _write_after_sending(response: Response) -> Response:
        # After the body is sent: the write never adds to a response's time.
        response.call_on_close(lambda: uses.write(key_id))
        return response


def require_organization_key(blueprint: Blueprint, owned: dict[str, type] | None = None) -> None:
    """Every view of ``blueprint`` needs a key of the organization named by ``organization_id``.

    ``owned`` maps path parameters to models (``{"webhook_id": Webhook}``): a record that does not
    exist or belongs to another organization is a 404 before the body is even looked at.
    """

    @blueprint.before_request
    def _check_key() -> None:
        key = authenticated_key()
        enforce_rate_limit(key.id)
        organization_id = key.organization_id
        view_args = request.view_args or {}
        if any("\x00" in str(value) for value in view_args.values()):
            raise NotFound("No such resource.")  # PostgreSQL cannot even compare a NUL-bearing string
        if view_args.get("organization_id") != organization_id:
            raise NotFound("No such organization.")
        _note_key_use(key.id)
        if request.url_rule is not None:  # None only for a request no route matched, answered 404/405
            require_role(key.role, request.method, request.url_rule.rule)
        for parameter, model in (owned or {}).items():
            record_id = view_args.get(parameter)
            if record_id is None:
                continue
            record = db().get(model, record_id)
            if record is None or record.organization_id != organization_id:
                raise NotFound(f"No {model.__name__.lower()} {record_id!r} in this organization.")
        g.organization_id = organization_id


def init_app(app: Flask) -> None:
    """This process's key lookups (each trusted for at most 2 s) and last-use bookkeeping."""
    app.extensions["key_cache"] = KeyCache()
    app.extensions["key_use_log"] = KeyUseLog(app.config["DATABASE_URL"])
