"""Webhook deliveries (one per event x webhook) and every attempt made for them.

A delivery's retry schedule lives here, not in a sleeping process: ``next_attempt_at`` is when the
retry sweep may take it next. While an attempt is in flight the same column holds a lease (the time
after which a crashed attempt is taken over), so two processes never attempt one delivery at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigIntPK, Timestamps, utcnow

# ``suppressed``: a throttled webhook's repeat within a cooldown, recorded and never sent (settled).
# ``silenced``: an event a silence of the organization matched, recorded and never sent (settled).
DELIVERY_STATUSES = ("pending", "retrying", "succeeded", "failed", "suppressed", "silenced")


class Delivery(Timestamps, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One delivery per event and webhook: a fan-out that runs twice cannot send twice.
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
        Index("ix_webhook_deliveries_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # dlv_<ulid>
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    # Copied from the event so the history filter needs no join.
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(default=0)
    # Due time of the next attempt (or the lease of the one in flight); null once settled.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(2000))
    # A suppressed delivery: the delivery (dlv_...) that opened the cooldown it falls in.
    repeats: Mapped[str | None] = mapped_column(String(40))
    # A silenced delivery: the silence (sil_...) that matched its event.
    silence_id: Mapped[str | None] = mapped_column(String(40))


class WebhookCooldown(Base):
    """A throttled webhook's open cooldown for one event type and group (``store.throttles``).

    The primary key is the claim: one row per (webhook, type, group), taken by an ``INSERT ... ON
    CONFLICT`` whose ``DO UPDATE`` only replaces a row whose ``until`` has passed, so of several
    dispatchers racing for a group exactly one opens it.
    """

    __tablename__ = "webhook_cooldowns"

    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of ``group``
    # The group's values per path (null: the event lacks the path); an episode's end matches on them.
    group: Mapped[dict[str, Any]]
    delivery_id: Mapped[str] = mapped_column(String(40))  # the delivery that opened it (was sent)
    until: Mapped[datetime]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryAttempt(Base):
    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (Index("ix_webhook_delivery_attempts_delivery_id", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    # initial | retry | redeliver | test
    trigger: Mapped[str] = mapped_column(String(16))
    # Header values the webhook owner set are masked; the signature is kept (it is not a secret).
    request_headers: Mapped[dict[str, Any]]
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)  # first KiB
    duration_ms: Mapped[float]
    error: Mapped[str | None] = mapped_column(String(2000))
    succeeded: Mapped[bool] = mapped_column(default=False)
