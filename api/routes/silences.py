"""``/organizations/{organization_id}/silences``: for a while, matching events go to no webhook."""

from __future__ import annotations

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint
from api.errors import NotFound
from api.pagination import paginate
from api.schemas.common import Page
from api.schemas.silences import SilenceIn, SilenceOut, SilencesQuery
from store.models import Silence, utcnow
from store.silences import create_silence, expire_silence, get_silence, silence_state, silences_query

bp = Blueprint("silences", __name__, url_prefix="/organizations/<organization_id>/silences")
require_organization_key(bp, owned={"silence_id": Silence})


def silence_out(silence: Silence) -> SilenceOut:
    return SilenceOut.of(silence, state=silence_state(silence, utcnow()))


@bp.post("")
@endpoint(body=SilenceIn, response=SilenceOut, status=201, problems=(401, 404, 422))
def create(organization_id: str, body: SilenceIn):
    """Create a silence.

    From `starts_at` (default now) until `ends_at`, an event of the organization that the `matchers`
    match is sent to no webhook: each subscribed webhook whose filter lets it through records it in its
    history as `silenced`, with the `silence_id`. `POST .../webhooks/{webhook_id}/recover` with
    `"statuses": ["silenced"]` sends them afterwards.
    """
    starts_at, ends_at = body.window(utcnow())
    silence = create_silence(db(), organization_id, body.matchers, starts_at, ends_at, body.comment, body.created_by)
    db().commit()
    location = url_for(".get_one", organization_id=organization_id, silence_id=silence.id)
    return Created(silence_out(silence), location)


@bp.get("")
@endpoint(query=SilencesQuery, response=Page[SilenceOut], problems=(401, 404, 422))
def list_silences(organization_id: str, query: SilencesQuery):
    """List silences.

    Oldest first, expired ones included; `state` (`pending`, `active`, `expired`) keeps one kind.
    """
    rows, cursor = paginate(db(), silences_query(organization_id, query.state, utcnow()), Silence.id, query)
    return Page[SilenceOut](items=[silence_out(row) for row in rows], next_cursor=cursor)


@bp.get("/<silence_id>")
@endpoint(response=SilenceOut, problems=(401, 404))
def get_one(organization_id: str, silence_id: str):
    """Get a silence."""
    return silence_out(_existing(organization_id, silence_id))


@bp.delete("/<silence_id>")
@endpoint(status=204, problems=(401, 404))
def expire(organization_id: str, silence_id: str):
    """Expire a silence now.

    Its `ends_at` becomes now (a pending one never begins); the record stays, state `expired`, so the
    deliveries it silenced still name it. Events from now on are sent; those it held back stay
    `silenced` until recovered. Expiring an expired silence changes nothing.
    """
    expire_silence(db(), _existing(organization_id, silence_id), utcnow())
    db().commit()


def _existing(organization_id: str, silence_id: str) -> Silence:
    silence = get_silence(db(), organization_id, silence_id)
    if silence is None:
        raise NotFound(f"No silence {silence_id!r}.")
    return silence
