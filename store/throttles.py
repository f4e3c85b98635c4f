"""Webhook throttling: a cooldown per event type and group, shared by every dispatcher through the database.

A webhook's ``throttle`` is ``{"group_by": [dotted paths], "cooldown_seconds": n}``; the paths are the
filters' (``store.event_filters``: ``type``, ``project_id``, ``data.<field>...``). The first event of a
type and group opens a cooldown and is sent; the same type and group before it ends gets a
``suppressed`` delivery naming the delivery it repeats, and is not sent. An episode's end
(``EPISODE_OPENERS``: ``drift.resolved``, ``threshold.resolved``) is always sent and ends the cooldown
of its group of the opening type; a path the end does not have (``threshold.resolved`` has no
``feature``) matches every value there.

The checks (``throttle_problems``) and the group of an event (``group_of``) are pure; the claims take
the session, like the rest of ``store``. ``claim_cooldown`` is one ``INSERT ... ON CONFLICT DO UPDATE
... WHERE until <= now RETURNING`` on the (webhook, type, group key) primary key: the row it returns (or
not) decides, so of
several dispatchers racing for a group exactly one opens the cooldown, on PostgreSQL and SQLite alike.

A fan-out transaction claims the groups of a whole batch of events, in event order, so two dispatchers'
batches would lock the same cooldown rows in different orders and, on PostgreSQL, deadlock (one is
aborted after ``deadlock_timeout``). Before its first claim a transaction therefore takes
``lock_cooldowns`` for every throttled webhook it will touch: a transaction-scoped advisory lock per
webhook, taken in one order every caller shares, so dispatchers working on the same webhook take
turns and none waits on a row another holds while holding one it wants. Anything else that changes
several cooldown rows in one transaction takes the same locks (``clear_cooldowns``) or never waits
(``prune_ended_cooldowns`` skips rows a claimer holds). SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.event_catalog import EPISODE_OPENERS
from store.event_filters import path_problem, path_values
from store.models import WebhookCooldown

MAX_GROUP_BY = 5
MAX_COOLDOWN_SECONDS = 7 * 24 * 3600  # a week

Group = dict[str, list[Any] | None]  # per path: its values, or None where the event lacks it


@dataclass(frozen=True)
class Throttle:
    group_by: tuple[str, ...]
    cooldown: timedelta


def throttle_problems(source: Any, event_types: Iterable[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with a ``throttle`` for a webhook of ``event_types``: (location, message) pairs.

    ``group_by``: 1 to ``MAX_GROUP_BY`` distinct dotted paths, each one that a subscribed type has;
    ``cooldown_seconds``: an integer from 1 to ``MAX_COOLDOWN_SECONDS``.
    """
    if not isinstance(source, dict):
        return [((), 'a throttle is a JSON object: {"group_by": [...], "cooldown_seconds": n}')]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for key in source:
        if key not in ("group_by", "cooldown_seconds"):
            problems.append(((key,), "unknown field: a throttle has group_by and cooldown_seconds"))
    group_by = source.get("group_by")
    if not isinstance(group_by, list) or not 1 <= len(group_by) <= MAX_GROUP_BY:
        problems.append((("group_by",), f"takes a list of 1 to {MAX_GROUP_BY} dotted paths (data.model)"))
    else:
        types = list(event_types)
        for index, path in enumerate(group_by):
            problem = path_problem(path, types)
            if problem is None and group_by.index(path) != index:
                problem = f"{path} is already in the list"
            if problem:
                problems.append((("group_by", index), problem))
    seconds = source.get("cooldown_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_COOLDOWN_SECONDS:
        problems.append((("cooldown_seconds",), f"an integer number of seconds from 1 to {MAX_COOLDOWN_SECONDS}"))
    return problems


def parse_throttle(source: Any) -> Throttle | None:
    """The stored ``throttle`` as used (``None``: none, or one that is not usable; the webhook gets every event)."""
    if not source or _shape_problems(source):
        return None
    return Throttle(tuple(source["group_by"]), timedelta(seconds=source["cooldown_seconds"]))


def _shape_problems(source: Any) -> bool:
    # Without the subscription at hand only the shape is checked: the paths were checked on the way in.
    if not isinstance(source, dict):
        return True
    group_by, seconds = source.get("group_by"), source.get("cooldown_seconds")
    return (
        not isinstance(group_by, list)
        or not 1 <= len(group_by) <= MAX_GROUP_BY
        or not all(isinstance(path, str) and path for path in group_by)
        or isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not 1 <= seconds <= MAX_COOLDOWN_SECONDS
    )


def _canonical(value: Any) -> Any:
    # 1 and 1.0 are one value, as in filters.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def group_of(envelope: dict[str, Any], group_by: Iterable[str]) -> Group:
    """The event's values at each path (``None`` where it does not have the path)."""
    group: Group = {}
    for path in group_by:
        found, values = path_values(envelope, path)
        group[path] = [_canonical(value) for value in values] if found else None
    return group


def group_key(group: Group) -> str:
    """The group's key in the cooldown table: a hash of its canonical JSON (any length of values fits)."""
    text = json.dumps(group, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def opening_type(event_type: str) -> str | None:
    """The type whose cooldown an episode-ending type ends (drift.detected for drift.resolved), else ``None``."""
    return EPISODE_OPENERS.get(event_type)


# --- the cooldowns (take the session) --------------------------------------------------------------


def _insert(session: Session):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(WebhookCooldown)


# The first of the two keys of every advisory lock taken here (PostgreSQL's two-int4 form), so they do not
# share the space of one-key locks other software on the database may take: "mpcd" as an int4.
LOCK_CLASS = int.from_bytes(b"mpcd", "big", signed=True)


def _lock_key(webhook_id: str) -> int:
    # Stable across processes (not hash()); two webhooks sharing a key only take turns needlessly.
    return int.from_bytes(hashlib.sha256(webhook_id.encode()).digest()[:4], "big", signed=True)


def lock_cooldowns(session: Session, webhook_ids: Iterable[str]) -> None:
    """Hold the cooldowns of these webhooks until the transaction ends (PostgreSQL; SQLite already has one
    writer at a time): call it before the transaction's first claim, naming every webhook it will claim
    or end a cooldown of.

    The locks are taken in order of their keys, the same for every caller, so two transactions wanting
    overlapping sets never wait on each other in a circle.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({_lock_key(webhook_id) for webhook_id in webhook_ids}):
        session.execute(select(func.pg_advisory_xact_lock(LOCK_CLASS, key)))


def claim_cooldown(
    session: Session,
    webhook_id: str,
    event_type: str,
    group: Group,
    delivery_id: str,
    now: datetime,
    cooldown: timedelta,
) -> str | None:
    """Open the group's cooldown for ``delivery_id`` unless one is running; ``None`` when this call opened it,
    else the id of the delivery that opened the running one (the one the event repeats).

    One statement decides: the insert, or on a conflict the update of a cooldown that has ended. A
    concurrent claim of the same group waits for this transaction (the row's lock) and then loses. A
    transaction claiming more than one group takes ``lock_cooldowns`` first.
    """
    key = group_key(group)
    for _ in range(3):
        statement = _insert(session).values(
            webhook_id=webhook_id,
            event_type=event_type,
            group_key=key,
            group=group,
            delivery_id=delivery_id,
            until=now + cooldown,
            opened_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["webhook_id", "event_type", "group_key"],
            set_={"delivery_id": delivery_id, "until": now + cooldown, "opened_at": now, "group": group},
            where=WebhookCooldown.until <= now,
        )
        # RETURNING, not the row count: a row comes back only when this statement inserted or replaced
        # one (psycopg's count for an upsert whose WHERE turned the update down is not 0).
        if session.execute(statement.returning(WebhookCooldown.delivery_id)).first() is not None:
            return None
        opener = session.scalar(
            select(WebhookCooldown.delivery_id).where(
                WebhookCooldown.webhook_id == webhook_id,
                WebhookCooldown.event_type == event_type,
                WebhookCooldown.group_key == key,
            )
        )
        if opener is not None:
            return opener
        # Ended (deleted by an episode's end) between the two statements: claim again.
    raise RuntimeError(f"webhook {webhook_id}: the cooldown of {event_type} {key} could not be claimed")


def end_cooldowns(session: Session, webhook_id: str, event_type: str, group: Group) -> int:
    """End the cooldowns of ``event_type`` whose group is ``group``, a path that is ``None`` there matching
    any value; return how many ended."""
    if all(values is not None for values in group.values()):
        return session.execute(
            delete(WebhookCooldown).where(
                WebhookCooldown.webhook_id == webhook_id,
                WebhookCooldown.event_type == event_type,
                WebhookCooldown.group_key == group_key(group),
            )
        ).rowcount
    rows = session.execute(
        select(WebhookCooldown.group_key, WebhookCooldown.group).where(
            WebhookCooldown.webhook_id == webhook_id, WebhookCooldown.event_type == event_type
        )
    ).all()
    keys = [
        key
        for key, stored in rows
        if all(values is None or stored.get(path) == values for path, values in group.items())
    ]
    if not keys:
        return 0
    return session.execute(
        delete(WebhookCooldown).where(
            WebhookCooldown.webhook_id == webhook_id,
            WebhookCooldown.event_type == event_type,
            WebhookCooldown.group_key.in_(keys),
        )
    ).rowcount


def clear_cooldowns(session: Session, webhook_id: str) -> None:
    """Forget a webhook's cooldowns (its throttle changed: the groups or the length are not the same)."""
    lock_cooldowns(session, [webhook_id])  # its rows, all at once: after any dispatcher claiming some of them
    session.execute(delete(WebhookCooldown).where(WebhookCooldown.webhook_id == webhook_id))


def _ended_cooldowns(now: datetime, limit: int) -> Select:
    return (
        select(WebhookCooldown.webhook_id, WebhookCooldown.event_type, WebhookCooldown.group_key)
        .where(WebhookCooldown.until < now)
        .limit(limit)
    )


def any_ended_cooldown(session: Session, now: datetime) -> bool:
    """Whether some cooldown ended before ``now`` (what ``prune_ended_cooldowns`` deletes)."""
    return session.execute(_ended_cooldowns(now, 1)).first() is not None


def prune_ended_cooldowns(session: Session, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` cooldowns that ended before ``now``.

    The rows are locked as they are chosen, skipping any a dispatcher holds (it is claiming that group
    again): the deletes then never wait, so the sweep cannot deadlock with a claimer.
    """
    ended = list(session.execute(_ended_cooldowns(now, limit).with_for_update(skip_locked=True)).all())
    for webhook_id, event_type, key in ended:
        session.execute(
            delete(WebhookCooldown).where(
                WebhookCooldown.webhook_id == webhook_id,
                WebhookCooldown.event_type == event_type,
                WebhookCooldown.group_key == key,
                WebhookCooldown.until < now,
            )
        )
    return len(ended)
