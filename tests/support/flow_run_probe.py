"""A flow that says where it ran: the flow-run fork server's and the worker's tests deploy it (by path, as
prefect.yaml's deployments are, ``deploy``) and read what it wrote."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger

ROOT = Path(__file__).resolve().parents[2]


@flow(name="flow-run-probe")
def probe(marker: str, sleep_seconds: float = 0.0) -> int:
    Path(marker).write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "flow_run_id": os.environ.get("PREFECT__FLOW_RUN_ID"),
                "cwd": os.getcwd(),
                "version_check": os.environ.get("PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"),
            }
        )
    )
    get_run_logger().info("probe ran in process %d", os.getpid())
    time.sleep(sleep_seconds)
    return os.getpid()


def deploy(client, pool: str):
    """The probe deployed (named like ``pool``) to ``pool``, created as ``up`` creates its pool; the
    deployment's id. ``client``: a sync Prefect client."""
    from stack.cli import ensure_work_pool

    ensure_work_pool(client, pool)
    return client.create_deployment(
        flow_id=client.create_flow_from_name("flow-run-probe"),
        name=pool,
        entrypoint="tests/support/flow_run_probe.py:probe",
        work_pool_name=pool,
        pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
    )
