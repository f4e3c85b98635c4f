"""Columns shared by the records whose secrets live in a Prefect block (integrations, exports)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from store.models.base import Timestamps


class ConnectionRecord(Timestamps):
    """A named, typed connection of one organization; its credentials are in the block
    ``modelpulse-<kind>-<id>`` and only the names of the set secret fields are kept here."""

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    secret_fields: Mapped[list[str]]
    status: Mapped[str] = mapped_column(String(32), default="active")
    status_detail: Mapped[str | None] = mapped_column(String(2000))

    @declared_attr
    def organization_id(cls) -> Mapped[str]:  # noqa: N805 - SQLAlchemy's declared_attr
        return mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
