"""``sync-registry``: record new versions of monitored models, then endpoint status changes.

It is the reconciliation behind pushed events (MLflow webhooks, SageMaker's EventBridge events):
whatever a push missed is found here, and nothing a push recorded is recorded twice. The scheduled
run also forgets inbound delivery ids old enough that no retry or replay can still bring them.

Run with an ``integration_id`` it syncs that integration now (``POST .../sync``); run without (the
deployment, started by the sweep gate when one is due) it syncs each integration whose ``config.sync_interval_seconds``
has elapsed, so every integration keeps its own schedule without a deployment of its own.
"""

from __future__ import annotations

from prefect import flow

from flows.monitor_endpoints import monitor_endpoints
from store.models import utcnow
from tasks.registry_tasks import (
    ENDPOINT_TYPES,
    find_due_integrations,
    integration_type,
    platform_message,
    prune_inbound_receipts,
    record_sync_outcome,
    sync_versions,
)


@flow(name="sync-registry")
def sync_registry(integration_id: str | None = None) -> dict[str, int]:
    """Sync one integration, or every integration that is due; returns versions recorded per integration."""
    targets = [integration_id] if integration_id else find_due_integrations()
    if not integration_id:
        prune_inbound_receipts()
    recorded: dict[str, int] = {}
    failures: dict[str, str] = {}
    for target in targets:
        started_at = utcnow()
        state = sync_versions(target, return_state=True)
        error = None if state.is_completed() else platform_message(state.result(raise_on_failure=False))
        recorded[target] = state.result() if error is None else 0
        record_sync_outcome(target, started_at, recorded[target], error)
        if error:
            failures[target] = error
        elif not integration_id and integration_type(target) in ENDPOINT_TYPES:
            monitor_endpoints(target)
    if failures:
        raise RuntimeError(f"sync failed for {len(failures)} integration(s): {failures}")
    return recorded
