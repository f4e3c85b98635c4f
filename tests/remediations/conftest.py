"""Fixtures of the remediation tests: a Prefect deployment to run, and a Prefect server with its event
services on (the session's server turns off the triggers, the event persister and the stream out)."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.topology import PREFECT_SERVER_TUNING
from tests.conftest import ROOT, WORKER_DIR, _migrated_prefect_database
from tests.remediations.served_flow import DEPLOYMENT_NAME, FLOW_NAME
from tests.support.servers import free_port, start_process, stop_process, wait_until_ready


@pytest.fixture
def deployment(prefect_server) -> str:
    """A deployment of the test flow on the session's server (nothing runs it): ``"<flow>/<deployment>"``."""
    from prefect.client.orchestration import get_client

    from tests.remediations.served_flow import retrain

    name = f"{DEPLOYMENT_NAME}-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(FLOW_NAME)
        client.create_deployment(
            flow_id, name, parameter_openapi_schema=retrain.parameters.model_dump(mode="json", by_alias=True)
        )
    return f"{FLOW_NAME}/{name}"


@pytest.fixture(scope="module")
def prefect_services_server() -> Iterator[str]:
    """A Prefect server of its own with everything on (triggers, event persister, stream out); its API URL.

    Its event persister writes every half second (the default, 5 s, is what reading an event back waited).
    """
    port = free_port()
    folder = WORKER_DIR / f"prefect-services-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_prefect_database(), folder / "prefect.db")
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        **PREFECT_SERVER_TUNING,
        "PREFECT_HOME": str(folder / "home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    process = start_process(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        folder / "prefect-server.log",
        env=env,
    )
    try:
        wait_until_ready(f"{url}/health", process, timeout=120)
        yield url
    finally:
        stop_process(process)


@pytest.fixture
def served_deployment(prefect_services_server, tmp_path) -> Iterator[tuple[str, Path]]:
    """The test flow served (``flow.serve``) on the services server; its "<flow>/<deployment>" and the folder
    where each run writes its parameters."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.support.polling import wait_until

    out_dir = tmp_path / "runs"
    out_dir.mkdir()
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_services_server,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PYTHONPATH": str(ROOT),
    }
    process = start_process(
        [sys.executable, "-m", "tests.remediations.served_flow"], tmp_path / "served.log", env=env, cwd=ROOT
    )
    name = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"

    def deployed() -> bool:
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect_services_server}),
            get_client(sync_client=True) as client,
        ):
            try:
                client.read_deployment_by_name(name)
                return True
            except ObjectNotFound:
                return False

    try:
        wait_until(deployed, 90, "the served test deployment", every=0.5)
        yield name, out_dir
    finally:
        stop_process(process)
