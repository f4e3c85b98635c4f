"""Due monitors: claim each due run and open its drift check over the latest window."""

from __future__ import annotations

from datetime import datetime, timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from store.db import session_scope
from store.drift import create_drift_check
from store.models import utcnow
from store.monitors import claim_monitor_run, due_monitors


@task(name="open-due-monitor-checks", cache_policy=NO_CACHE)
def open_due_monitor_checks(now: datetime | None = None) -> list[str]:
    """For every due monitor, move its schedule on and create a pending check; return the check ids.

    Claim and check are one transaction: a sweep that dies before commit leaves the monitor due.
    """
    now = now or utcnow()
    check_ids = []
    with session_scope() as session:
        for monitor in due_monitors(session, now):
            if not claim_monitor_run(session, monitor, now):
                continue
            check = create_drift_check(
                session,
                monitor.organization_id,
                project_id=monitor.project_id,
                model=monitor.model,
                model_version=monitor.model_version,
                method=monitor.method,
                threshold=monitor.threshold,
                features=monitor.features,
                reference_from=monitor.reference_from,
                reference_to=monitor.reference_to,
                current_from=now - timedelta(seconds=monitor.window_seconds),
                current_to=now,
                monitor_id=monitor.id,
            )
            monitor.last_check_id = check.id
            check_ids.append(check.id)
    return check_ids
