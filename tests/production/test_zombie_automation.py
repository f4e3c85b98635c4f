"""The zombie-run automation `modelpulse prefect-setup` keeps on the Prefect server: created once,
following MODELPULSE_FLOW_HEARTBEAT_SECONDS, however often setup runs. (That it fires is shown by
test_worker_loss.py, on the production shape.)"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from flows.zombie_runs import AUTOMATION_NAME, ensure_zombie_automation, zombie_automation
from stack.topology import stack_environment
from store.settings import Settings
from tests.conftest import ROOT


def automations() -> list:
    with get_client(sync_client=True) as client:
        return client.read_automations_by_name(AUTOMATION_NAME)


def test_setup_keeps_one_automation_that_follows_the_heartbeat(prefect_server):
    first = ensure_zombie_automation(30)
    assert ensure_zombie_automation(30) == first
    (automation,) = automations()
    trigger = automation.trigger
    assert trigger.posture == "Proactive" and trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Crashed"} <= trigger.expect
    assert trigger.for_each == {"prefect.resource.id"} and trigger.within == timedelta(seconds=90)
    assert [action.state for action in automation.actions] == [StateType.CRASHED]

    # A slower heartbeat widens the window of the same automation; a duplicate (two setups racing) goes.
    with get_client(sync_client=True) as client:
        client.create_automation(zombie_automation(30))
    assert len(automations()) == 2
    kept = ensure_zombie_automation(60)
    (automation,) = automations()
    assert automation.id == kept
    assert automation.trigger.within == timedelta(seconds=180)


def test_every_process_of_the_stack_heartbeats_at_the_configured_interval(tmp_path):
    env = stack_environment(Settings(home=tmp_path, flow_heartbeat_seconds=45))
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "45"
    # ... and Prefect, in a process started with that environment, takes it.
    probe = "from prefect.settings import get_current_settings as s; print(s().flows.heartbeat_frequency)"
    output = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "PATH": os.environ["PATH"]}, cwd=ROOT,
        capture_output=True, text=True, check=True,
    ).stdout
    assert output.strip() == "45"
    assert stack_environment(Settings(home=tmp_path))["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
