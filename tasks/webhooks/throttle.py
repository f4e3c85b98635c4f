"""The dispatcher's side of webhook throttling: which of an event's webhooks send it and which hold it back.

A webhook's ``throttle`` comes with its row (the planner loads the rows anyway) and an event's group is
pure Python over its wire form; the only database work is the cooldown claim itself (one statement for
an event that opens a cooldown, two for a repeat: the claim, then the id it repeats) and, for an
episode's end, ending its group's cooldown. Webhooks without a throttle cost nothing. The cooldowns
and their claims are ``store.throttles``.

A transaction deciding for several events calls ``hold`` once, before the first ``decide``, with every
event's webhooks: on PostgreSQL it takes the throttled webhooks' cooldown locks in the order every
dispatcher uses (``store.throttles.lock_cooldowns``), so batches claiming overlapping groups in
different orders take turns instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store import throttles
from store.ids import new_id
from store.models import Event, Webhook


@dataclass
class Decision:
    """For one event: the webhooks that send it (with their deliveries' ids) and those that hold it back."""

    sending: list[Webhook] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    suppressed: dict[str, str] = field(default_factory=dict)  # webhook id -> the delivery the event repeats


def hold(session: Session, webhooks: Iterable[Webhook]) -> None:
    """Lock the cooldowns of the throttled webhooks among ``webhooks`` for the rest of the transaction
    (PostgreSQL); call it once, before the transaction's first ``decide``, naming every webhook it decides for."""
    throttled = [webhook.id for webhook in webhooks if throttles.parse_throttle(webhook.throttle) is not None]
    if throttled:
        throttles.lock_cooldowns(session, throttled)


def decide(
    session: Session, event: Event, envelope: dict[str, Any], webhooks: Sequence[Webhook], now: datetime
) -> Decision:
    """Claim the cooldowns of the throttled webhooks among ``webhooks`` for the event.

    The first event of a type and group opens a cooldown and is sent; a repeat within it is
    suppressed; an episode's end (``*.resolved``) is sent and ends its group's cooldown of the
    opening type.
    """
    decision = Decision()
    for webhook in webhooks:
        delivery_id = new_id("dlv")
        throttle = throttles.parse_throttle(webhook.throttle)
        if throttle is not None:
            group = throttles.group_of(envelope, throttle.group_by)
            opener = throttles.opening_type(event.type)
            if opener is not None:
                if opener in webhook.events:
                    throttles.end_cooldowns(session, webhook.id, opener, group)
            else:
                repeats = throttles.claim_cooldown(
                    session, webhook.id, event.type, group, delivery_id, now, throttle.cooldown
                )
                if repeats is not None:
                    decision.suppressed[webhook.id] = repeats
                    continue
        decision.sending.append(webhook)
        decision.ids.append(delivery_id)
    return decision
