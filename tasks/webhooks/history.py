"""Keep the delivery history bounded: settled deliveries older than ``history_days`` are deleted."""

from __future__ import annotations

from store import deliveries as store
from store import throttles
from store.db import session_scope
from store.models import utcnow
from tasks.webhooks.settings import get_webhook_settings

# Deleted per transaction, so the sweep never holds the database for long.
PRUNE_BATCH = 5000


def prune_delivery_history(max_batches: int = 20, database_url: str | None = None) -> int:
    """Delete settled deliveries past the retention window (at most ``max_batches`` batches a call), and
    cooldowns that have ended; return how many deliveries were deleted."""
    created_before = get_webhook_settings().history_before(utcnow())
    deleted = 0
    for _ in range(max_batches):
        with session_scope(database_url) as session:
            batch = store.prune_settled_deliveries(session, created_before, PRUNE_BATCH)
        deleted += batch
        if batch < PRUNE_BATCH:
            break
    # Ended cooldowns of throttled webhooks: the next event of their group replaces them anyway.
    for _ in range(max_batches):
        with session_scope(database_url) as session:
            if throttles.prune_ended_cooldowns(session, utcnow(), PRUNE_BATCH) < PRUNE_BATCH:
                break
    return deleted
