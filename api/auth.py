"""Bearer-key authentication, scoped to the organization in the path.

A key used on another organization's path gets 404, never 403: the API does not confirm that the
other organization exists.
"""

from __future__ import annotations

from flask import Blueprint, g, request

from api.db import db
from api.errors import NotFound, Unauthorized
from store.organizations import organization_for_key


def authenticated_organization() -> str:
    """The organization id of the request's bearer key; raises ``Unauthorized``."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized()
    organization_id = organization_for_key(db(), key)
    if organization_id is None:
        raise Unauthorized("The API key is invalid or revoked.")
    return organization_id


def require_organization_key(blueprint: Blueprint, owned: dict[str, type] | None = None) -> None:
    """Every view of ``blueprint`` needs a key of the organization named by ``organization_id``.

    ``owned`` maps path parameters to models (``{"webhook_id": Webhook}``): a record that does not
    exist or belongs to another organization is a 404 before the body is even looked at.
    """

    @blueprint.before_request
    def _check_key() -> None:
        organization_id = authenticated_organization()
        view_args = request.view_args or {}
        if view_args.get("organization_id") != organization_id:
            raise NotFound("No such organization.")
        for parameter, model in (owned or {}).items():
            record_id = view_args.get(parameter)
            if record_id is None:
                continue
            record = db().get(model, record_id)
            if record is None or record.organization_id != organization_id:
                raise NotFound(f"No {model.__name__.lower()} {record_id!r} in this organization.")
        g.organization_id = organization_id
