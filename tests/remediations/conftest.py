"""Fixtures of the remediation tests: a Prefect deployment to run, and one served on the Prefect server
with its event services on (``prefect_services_server``, tests/conftest.py)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.remediations.served_flow import DEPLOYMENT_NAME, FLOW_NAME
from tests.support.servers import start_process, stop_process


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
