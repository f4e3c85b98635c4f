"""`modelpulse up` as an operator's shell and a load balancer meet it: started with SIGINT ignored, killed
with SIGKILL, and its API's keep-alive connections reused after a balancer's idle time.

Each test brings up the `api` role only, against the session's Prefect server and a migrated PostgreSQL
database (a machine with only some roles shares it), through the documented command
(`python -m stack up --roles api`).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.servers import free_port, wait_until_ready


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    """The pids still alive after waiting up to ``seconds`` for them to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if _alive(pid)}
        if not alive:
            return set()
        time.sleep(0.2)
    return {pid for pid in pids if _alive(pid)}


pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def up_api(database_url, prefect_server, tmp_path) -> Iterator[Callable[..., tuple[subprocess.Popen, str]]]:
    """``up_api(ignore_sigint=False)`` starts `up --roles api`; returns the process and the API's URL."""
    started: list[subprocess.Popen] = []

    def start(ignore_sigint: bool = False) -> tuple[subprocess.Popen, str]:
        port = free_port()
        env = os.environ | {
            "MODELPULSE_HOME": str(tmp_path / f"home-{port}"),
            "MODELPULSE_DATABASE_URL": database_url,
            "MODELPULSE_PREFECT_API_URL": prefect_server,
            "MODELPULSE_API_PORT": str(port),
            "MODELPULSE_API_WORKERS": "1",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "stack", "up", "--roles", "api"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(tmp_path / f"up-{port}.log", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            # As a non-interactive shell's `cmd &` starts it: SIGINT ignored, inherited by Python.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{url}/health", process, timeout=120)
        return process, url

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_up_started_with_sigint_ignored_stops_on_sigint(up_api):
    up, _url = up_api(ignore_sigint=True)
    services = _children(up.pid)
    assert services, "up started no process"
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=30) == 0
    assert _gone_within(services, 15) == set()


def test_every_process_dies_with_a_killed_up(up_api):
    """SIGKILL leaves `up` no chance to stop anything: its services go by themselves (parent-death signal),
    gunicorn's workers with their master, and the port is free for the next `up`."""
    up, url = up_api()
    services = _children(up.pid)
    workers = set().union(*(_children(pid) for pid in services))
    assert services and workers, "the API runs as a gunicorn master and its workers"
    up.kill()
    up.wait(timeout=10)
    assert _gone_within(services | workers, 30) == set()
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()


def test_an_idle_keep_alive_connection_is_reused_after_65_seconds(up_api):
    """A load balancer keeps idle connections 60 s (AWS ALB) to 75 s (nginx): the API must keep them longer,
    or the balancer's next request on one meets a reset (a 502 to its client)."""
    _up, url = up_api()
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
    connection.request("GET", "/health")
    first = connection.getresponse()
    first.read()
    assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
    socket_before = connection.sock
    time.sleep(65)
    connection.request("GET", "/health")  # on the same socket: http.client reconnects only if it has none
    second = connection.getresponse()
    second.read()
    assert second.status == 200
    assert connection.sock is socket_before
    connection.close()
