"""Webhook subscriptions. The signing secret, header values and every other secret live in a Prefect block.

``format`` says how an event is rendered for the receiver (``standard``, ``slack``, ``teams``,
``pagerduty``: ``tasks/webhooks/formats``). For ``slack`` and ``teams`` the URL itself is the secret:
``url`` then holds only its masked form (``https://hooks.slack.com/********``) and the block the real one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps


class Webhook(Timestamps, Base):
    __tablename__ = "webhooks"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)  # masked when the format keeps the URL secret
    format: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    # Non-secret rendering options of the format (``severity``, ``source``).
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    events: Mapped[list[str]]
    # Header names only; the values are secrets (they usually carry tokens).
    header_names: Mapped[list[str]]
    project_id: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(2000))
    # Which events of its types it receives (``store.event_filters``); NULL (not JSON null): every one.
    filter: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    )
    # ``{"group_by": [dotted paths], "cooldown_seconds": n}`` (``store.throttles``); NULL: every event is sent.
    throttle: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    )
