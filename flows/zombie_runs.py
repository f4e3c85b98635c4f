"""Zombie flow runs: a run whose process died without a word (kill -9, a lost machine, an OOM kill
of the worker) is marked ``Crashed`` once its heartbeats stop, as Prefect documents for self-hosted
servers ("Detect zombie flows"; Prefect Cloud's managed "unresponsive run detection").

Every flow run sends a ``prefect.flow-run.heartbeat`` event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
seconds (``stack.topology`` sets it from ``MODELPULSE_FLOW_HEARTBEAT_SECONDS`` for every process of the
stack). The automation below expects, after each heartbeat of a run, another heartbeat or a final
state within three heartbeat intervals; when none comes, it moves the run to ``Crashed``. That is
what frees the slot of a deployment's concurrency limit (an export's ``export/<id>`` has a limit of
1), so the export's next run can start and resume from its watermark.

Example:
    ```python
    ensure_zombie_automation(heartbeat_seconds=30)   # `modelpulse prefect-setup` does this
    ```
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

AUTOMATION_NAME = "modelpulse: crash flow runs whose heartbeats stopped"
MISSED_HEARTBEATS = 3
CRASH_MESSAGE = "Marked Crashed by ModelPulse: no heartbeat from this flow run for {seconds} s (its process died)."
# A run that reaches a final state, or is paused or suspended, stops its heartbeats on purpose.
QUIET_STATE_EVENTS = {
    f"prefect.flow-run.{name}"
    for name in ("Completed", "Failed", "Cancelled", "Crashed", "TimedOut", "Paused", "Suspended")
}


def zombie_automation(heartbeat_seconds: int) -> AutomationCore:
    """The automation that crashes a flow run after ``MISSED_HEARTBEATS`` silent heartbeat intervals."""
    window = heartbeat_seconds * MISSED_HEARTBEATS
    return AutomationCore(
        name=AUTOMATION_NAME,
        description=(
            f"A flow run sends a heartbeat every {heartbeat_seconds} s while it runs. When neither "
            f"another heartbeat nor a final state follows within {window} s, its process is gone: "
            "mark it Crashed so its concurrency slot is freed and the next run can start."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *QUIET_STATE_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=window),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=CRASH_MESSAGE.format(seconds=window))],
    )


def ensure_zombie_automation(heartbeat_seconds: int) -> UUID:
    """Create the automation, or bring an existing one (by name) in line with ``heartbeat_seconds``.

    Idempotent: run at every ``prefect-setup``; a duplicate left by two concurrent setups is deleted.
    """
    wanted = zombie_automation(heartbeat_seconds)
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(AUTOMATION_NAME)
        if not existing:
            return client.create_automation(wanted)
        keep, *duplicates = existing
        client.update_automation(keep.id, wanted)
        for duplicate in duplicates:
            client.delete_automation(duplicate.id)
        return keep.id
