"""Remediations: data access. The Prefect automation each row names is kept by ``api/services/remediations.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import Remediation


def new_remediation_id() -> str:
    return new_id("rem")


def get_remediation(session: Session, organization_id: str, remediation_id: str) -> Remediation | None:
    """The organization's remediation, or ``None`` (another organization's is ``None`` too)."""
    return session.scalar(
        select(Remediation).where(Remediation.organization_id == organization_id, Remediation.id == remediation_id)
    )


def named(session: Session, organization_id: str, name: str) -> Remediation | None:
    """The organization's remediation called ``name``, or ``None``."""
    return session.scalar(
        select(Remediation).where(Remediation.organization_id == organization_id, Remediation.name == name)
    )


def list_remediations_query(organization_id: str) -> Select[tuple[Remediation]]:
    return select(Remediation).where(Remediation.organization_id == organization_id)


def add_remediation(session: Session, organization_id: str, remediation_id: str, fields: dict[str, Any]) -> Remediation:
    """Add a remediation to ``session`` (``fields``: name, on, deployment, parameters, automation_id)."""
    remediation = Remediation(id=remediation_id, organization_id=organization_id, **fields)
    session.add(remediation)
    session.flush()
    return remediation


def remediations_of(session: Session, organization_ids: Iterable[str]) -> list[Remediation]:
    """Every remediation of these organizations (what the event publisher matches events against)."""
    ids = sorted(set(organization_ids))
    if not ids:
        return []
    query = select(Remediation).where(Remediation.organization_id.in_(ids)).order_by(Remediation.id)
    return list(session.scalars(query))
