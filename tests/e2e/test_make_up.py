"""The real `make up` stack, driven over HTTP, then stopped with Ctrl-C (SIGINT to its process group):
every process it started exits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import descendants, read_output_until, still_running
from tests.support.servers import free_port
from tests.webhooks.receivers import Receiver

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]


def _read_until(process: subprocess.Popen, pattern: str, timeout: float) -> tuple[re.Match, str]:
    """Read the process's output until ``pattern`` shows up."""
    match, output = read_output_until(process, pattern, timeout)
    if match is None:
        raise AssertionError(f"no {pattern!r} within {timeout}s; output:\n{output}")
    return match, output


def heavy_libraries(pid: int) -> list[str]:
    """Which of pandas, grpc and scipy have a shared library mapped in process ``pid``."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return [name for name in ("pandas", "grpc", "scipy") if f"site-packages/{name}/" in maps]


def _port_closed(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_make_up_serves_everything_and_stops_on_ctrl_c(tmp_path):
    api_port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MODELPULSE_"))}
    env |= {
        "MODELPULSE_HOME": str(tmp_path / "home"),
        "MODELPULSE_API_PORT": str(api_port),
        "MODELPULSE_PREFECT_PORT": str(prefect_port),
        "MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",  # the receiver below is on loopback
    }
    venv = Path(sys.executable).parent.parent
    process = subprocess.Popen(
        ["make", "--no-print-directory", "up", f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            match, output = _read_until(process, r"API key:\s+(\S+)", timeout=420)
        except AssertionError as error:
            logs = tmp_path / "home" / "logs"
            tails = {p.name: p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log"))}
            raise AssertionError(f"{error}\nstack logs: {tails}") from None
        key = match.group(1)
        assert f"http://127.0.0.1:{api_port}" in output
        assert f"http://127.0.0.1:{api_port}/docs" in output
        assert f"http://127.0.0.1:{prefect_port}" in output

        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"})
        created = api.post(
            "/organizations/default/webhooks",
            json={"name": "stack", "url": "https://hooks.example.com/x", "events": ["model.registered"]},
        )
        assert created.status_code == 201, created.text
        assert created.json()["signing_secret"].startswith("whsec_")
        assert api.get("/organizations/default/webhooks").json()["items"][0]["name"] == "stack"
        assert api.get("/organizations/other/webhooks").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{api_port}/docs").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{prefect_port}/api/health").json() is True
        ui = httpx.get(f"http://127.0.0.1:{prefect_port}/", follow_redirects=True)
        assert ui.status_code == 200 and "<html" in ui.text.lower()
        pools = httpx.post(f"http://127.0.0.1:{prefect_port}/api/work_pools/filter", json={}).json()
        assert "modelpulse" in [pool["name"] for pool in pools]
        deployments = httpx.post(f"http://127.0.0.1:{prefect_port}/api/deployments/filter", json={}).json()
        names = {deployment["name"] for deployment in deployments}
        assert {"export", "registry-sync", "run-monitors", "retry-due-deliveries"} <= names, names
        assert (tmp_path / "home" / "default-api-key").stat().st_mode & 0o077 == 0

        # An event goes through the stack's dispatcher to a real receiver, signed.
        with Receiver() as receiver:
            hook = api.post(
                "/organizations/default/webhooks",
                json={"name": "receiver", "url": receiver.url, "events": ["drift.detected"]},
            ).json()
            drift = {"type": "drift.detected", "data": {"model": "churn", "psi": 0.3}}
            event = api.post("/organizations/default/events", json=drift)
            assert event.status_code == 202, event.text
            (received,) = wait_until(lambda: receiver.received, what="the delivery through the stack")
            assert received.verify(hook["signing_secret"])["id"] == event.json()["id"]

        # The API's /metrics counts the dispatcher's attempt: one directory for the machine's processes.
        def delivered() -> bool:
            metrics = httpx.get(f"http://127.0.0.1:{api_port}/metrics").text
            return 'modelpulse_webhook_attempts_total{organization="default",outcome="delivered"} 1.0' in metrics

        wait_until(delivered, 30, "the dispatcher's attempt in the API's /metrics")

        # No process of the stack holds libraries none of its work needs (issue 22): the Prefect server
        # and the worker load no Prefect collection (prefect_gcp: grpc, pandas, ~300 MB), the API no
        # mlflow (pandas, scipy). Flow runs that use them import them in their own fork.
        holding = {
            (pid, command[:80]): found for pid, command in descendants(process.pid) if (found := heavy_libraries(pid))
        }
        assert holding == {}
    finally:
        stack = [pid for pid, _ in descendants(process.pid)]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    assert _port_closed(api_port) and _port_closed(prefect_port)
    # Nothing outlives the stack (gunicorn workers once did, deadlocked by two signals at once).
    wait_until(lambda: not still_running(stack), 30, "every process of the stack to exit")
