"""``/organizations/{organization_id}/remediations``: a Prefect deployment run when a matching event happens."""

from __future__ import annotations

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint
from api.errors import NotFound
from api.pagination import encode_cursor, page_offset, paginate
from api.schemas.common import Page, PageQuery
from api.schemas.remediations import RemediationIn, RemediationOut, RemediationRunOut
from api.services.remediations import create_remediation, delete_remediation, remediation_runs, replace_remediation
from store.models import Remediation
from store.remediations import get_remediation, list_remediations_query

bp = Blueprint("remediations", __name__, url_prefix="/organizations/<organization_id>/remediations")
require_organization_key(bp, owned={"remediation_id": Remediation})


def _existing(organization_id: str, remediation_id: str) -> Remediation:
    remediation = get_remediation(db(), organization_id, remediation_id)
    if remediation is None:
        raise NotFound(f"No remediation {remediation_id!r}.")
    return remediation


@bp.post("")
@endpoint(body=RemediationIn, response=RemediationOut, status=201, problems=(401, 404, 409, 422, 503))
def create(organization_id: str, body: RemediationIn):
    """Create a remediation: a Prefect automation that runs `deployment` when an event matches `on`.

    Every event of the organization of type `on.type` that `on.filter` matches starts a flow run of the
    deployment (`"<flow name>/<deployment name>"`, 422 naming `deployment` if Prefect has none), with
    `parameters` rendered by Prefect from the event (`"{{ event.payload.data.model }}"`). Only this
    organization's events start it. 503 when Prefect cannot be reached (nothing is created).
    """
    remediation = create_remediation(db(), organization_id, body)
    location = url_for(".get_one", organization_id=organization_id, remediation_id=remediation.id)
    return Created(RemediationOut.of(remediation), location)


@bp.get("")
@endpoint(query=PageQuery, response=Page[RemediationOut], problems=(401, 404, 422))
def list_all(organization_id: str, query: PageQuery):
    """List remediations."""
    records, cursor = paginate(db(), list_remediations_query(organization_id), Remediation.id, query)
    return Page[RemediationOut](items=[RemediationOut.of(r) for r in records], next_cursor=cursor)


@bp.get("/<remediation_id>")
@endpoint(response=RemediationOut, problems=(401, 404))
def get_one(organization_id: str, remediation_id: str):
    """Get a remediation."""
    return RemediationOut.of(_existing(organization_id, remediation_id))


@bp.put("/<remediation_id>")
@endpoint(body=RemediationIn, response=RemediationOut, problems=(401, 404, 409, 422, 503))
def update(organization_id: str, remediation_id: str, body: RemediationIn):
    """Replace a remediation (its automation is rewritten; events already matched keep their match)."""
    remediation = _existing(organization_id, remediation_id)
    return RemediationOut.of(replace_remediation(db(), remediation, body))


@bp.delete("/<remediation_id>")
@endpoint(status=204, problems=(401, 404, 503))
def delete(organization_id: str, remediation_id: str):
    """Delete a remediation and its Prefect automation (runs it started are kept in Prefect)."""
    delete_remediation(db(), _existing(organization_id, remediation_id))


@bp.get("/<remediation_id>/runs")
@endpoint(query=PageQuery, response=Page[RemediationRunOut], problems=(401, 404, 422, 503))
def list_runs(organization_id: str, remediation_id: str, query: PageQuery):
    """List the Prefect flow runs the remediation started, oldest first, with their state and parameters."""
    start = page_offset(query)  # a bad cursor is the client's error, found before calling Prefect
    remediation = _existing(organization_id, remediation_id)
    runs = remediation_runs(remediation, start, query.limit + 1)
    more = len(runs) > query.limit
    cursor = encode_cursor(str(start + query.limit)) if more else None
    return Page[RemediationRunOut](items=runs[: query.limit], next_cursor=cursor)
