"""A flow that says where it ran: the flow-run fork server's tests deploy it (by path, as prefect.yaml's
deployments are) and read what it wrote."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger


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
