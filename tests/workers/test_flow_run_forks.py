"""Flow runs forked from the warm flow-run server (``stack.flow_run_forks``), as ``up`` runs them: a work
pool whose command is ``modelpulse-flow-run`` (``stack.cli.ensure_work_pool``), a real process worker, a
real Prefect server. What must hold: the run is a child of the fork server (no new interpreter) and is
seen by Prefect as any run is; cancelling it or killing its client ends it; with no fork server, or
after ModelPulse's code changed on disk, runs start in a fresh interpreter as before."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from stack.cli import FLOW_RUN_COMMAND
from stack.flow_run_client import HEADER, connect
from stack.flow_run_forks import OWN_PACKAGES
from tests.conftest import ROOT, WORKER_DIR
from tests.support import flow_run_probe
from tests.support.polling import wait_until
from tests.support.servers import start_process, stop_process

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def environment(home: Path) -> dict[str, str]:
    return dict(
        os.environ,
        MODELPULSE_HOME=str(home),
        PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
    )


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def fork_server(home):
    """``start(root=ROOT)``: the fork server of ``home`` running the code under ``root``, ready to fork;
    stopped after the test."""
    started = []

    def start(root: Path = ROOT):
        env = environment(home)
        if root != ROOT:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        process = start_process(
            [sys.executable, "-m", "stack.flow_run_forks"], WORKER_DIR / f"forks-{home.parent.name}.log",
            env=env, cwd=root,
        )
        started.append(process)
        wait_until(lambda: (sock := connect(str(home))) and (sock.close() or True), 120, "the fork server")
        return process

    yield start
    for process in started:
        stop_process(process)


class Worker:
    """A process worker on a pool of its own whose command is ``modelpulse-flow-run``, with the probe flow
    deployed to it."""

    def __init__(self, home: Path):
        self.pool = f"forks-{uuid.uuid4().hex[:8]}"
        with get_client(sync_client=True) as client:
            self.deployment_id = flow_run_probe.deploy(client, self.pool)
            template = client.read_work_pool(self.pool).base_job_template
            assert template["variables"]["properties"]["command"]["default"] == FLOW_RUN_COMMAND
        self.process = start_process(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", self.pool, "--type", "process",
             "--name", self.pool],
            WORKER_DIR / f"{self.pool}.log", env=environment(home), cwd=ROOT,
        )

    def run(self, **parameters) -> str:
        """Start a run of the probe; its id."""
        with get_client(sync_client=True) as client:
            return str(client.create_flow_run_from_deployment(self.deployment_id, parameters=parameters).id)


@pytest.fixture
def forking_worker(home, prefect_server):
    worker = Worker(home)
    yield worker
    stop_process(worker.process)


def state_of(flow_run_id: str) -> str:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state.type.value


def final_state(flow_run_id: str, timeout: float = 90) -> str:
    return wait_until(lambda: (s := state_of(flow_run_id)) in FINAL and s, timeout, f"flow run {flow_run_id} to end")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped has ended
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def probe_marker(marker: Path) -> dict:
    return wait_until(lambda: marker.exists() and marker.read_text() and json.loads(marker.read_text()), 90,
                      "the probe's marker")


def test_a_run_is_a_child_of_the_fork_server(fork_server, forking_worker, tmp_path):
    server = fork_server()
    marker = tmp_path / "ran.json"
    flow_run_id = forking_worker.run(marker=str(marker))
    assert final_state(flow_run_id) == "COMPLETED"
    ran = json.loads(marker.read_text())
    assert ran["ppid"] == server.pid, "the run was not forked from the warm server"
    assert ran["flow_run_id"] == flow_run_id
    assert ran["cwd"] == str(ROOT)  # the deployment's pull step ran in the child
    assert ran["version_check"] == "false"  # the worker checked the server's version; its runs do not again
    wait_until(lambda: any("probe ran" in log.message for log in logs_of(flow_run_id)), 30, "the run's log in Prefect")


def logs_of(flow_run_id: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))


def test_the_workers_sigterm_reaches_the_forked_run(fork_server, forking_worker, tmp_path):
    """Cancelling a run, Prefect's worker sends SIGTERM to the process it started (after telling the
    run over its control channel, which the forked run reaches as any run does): the client passes the
    signal on to the run, which ends, and the worker sees the client end with it."""
    fork_server()
    marker = tmp_path / "ran.json"
    flow_run_id = forking_worker.run(marker=str(marker), sleep_seconds=300)
    child = probe_marker(marker)["pid"]
    wait_until(lambda: state_of(flow_run_id) == "RUNNING", 60, "the run to be running")
    client_pid = client_of(forking_worker.process.pid)
    os.kill(client_pid, signal.SIGTERM)
    wait_until(lambda: not alive(child), 60, "the forked run to end on SIGTERM")
    wait_until(lambda: not alive(client_pid), 30, "its client to end with it")
    assert final_state(flow_run_id, 120) == "CRASHED"  # a SIGTERM with no cancellation intent: a crash


def test_a_killed_client_takes_its_forked_process_with_it(fork_server, forking_worker, tmp_path):
    fork_server()
    marker = tmp_path / "ran.json"
    flow_run_id = forking_worker.run(marker=str(marker), sleep_seconds=300)
    child = probe_marker(marker)["pid"]
    client_pid = client_of(forking_worker.process.pid)
    os.kill(client_pid, signal.SIGKILL)  # what the worker does when a cancelled run outlives its grace
    wait_until(lambda: not alive(child), 30, "the forked process to end with its client")
    assert final_state(flow_run_id, 120) == "CRASHED"


def client_of(worker: int) -> int:
    """The ``modelpulse-flow-run`` process ``worker`` started (its own child: tests run side by side)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == worker and any(part.endswith(FLOW_RUN_COMMAND.encode()) for part in command):
                return int(entry.name)
    raise AssertionError(f"no {FLOW_RUN_COMMAND} process started by worker {worker}")


def test_without_a_fork_server_runs_start_a_fresh_interpreter(forking_worker, tmp_path):
    marker = tmp_path / "ran.json"
    flow_run_id = forking_worker.run(marker=str(marker))
    assert final_state(flow_run_id) == "COMPLETED"
    ran = json.loads(marker.read_text())
    # The client became `python -m prefect.engine` in place (exec): the run is the worker's own child.
    assert ran["ppid"] == forking_worker.process.pid
    assert ran["flow_run_id"] == flow_run_id


def copy_of_the_code(destination: Path) -> Path:
    """ModelPulse's packages and prefect.yaml copied (with their compiled files and times) under
    ``destination``: a change there is seen by a fork server started on the copy, and by no other
    (tests running beside this one keep their servers)."""
    for package in OWN_PACKAGES:
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("static"))
    shutil.copy2(ROOT / "prefect.yaml", destination / "prefect.yaml")
    return destination


def test_a_code_change_on_disk_means_a_fresh_interpreter_then_a_fresh_server(fork_server, forking_worker, tmp_path):
    code = copy_of_the_code(tmp_path / "code")
    server = fork_server(root=code)
    watched = code / "stack" / "flow_run_client.py"
    stat = watched.stat()
    os.utime(watched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    marker = tmp_path / "changed.json"
    flow_run_id = forking_worker.run(marker=str(marker))
    assert final_state(flow_run_id) == "COMPLETED"
    assert json.loads(marker.read_text())["ppid"] == forking_worker.process.pid  # not the stale server's
    # The server started itself again on the code now on disk (same process): forked once more.
    marker = tmp_path / "after.json"
    flow_run_id = forking_worker.run(marker=str(marker))
    assert final_state(flow_run_id) == "COMPLETED"
    assert json.loads(marker.read_text())["ppid"] == server.pid


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def refused_at_once(home: Path, body: bytes, length: int | None = None) -> None:
    """Send ``body`` (after a header of ``length`` with three descriptors, unless None) and see the server
    close the connection without an answer: refused, no child forked."""
    with connect(str(home)) as sock:
        if length is not None:
            socket.send_fds(sock, [HEADER.pack(length)], [0, 1, 2])
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            return  # it refused on the header alone and closed before the body was sent: no answer either
        sock.settimeout(10)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass  # closed with our bytes unread: refused, without an answer


def test_the_fork_server_survives_hostile_requests_and_keeps_no_descriptor(fork_server, home):
    server = fork_server()
    # Counted once the server has answered a first refused request: by then it has closed the readiness
    # probe's connection (it serves one connection at a time, in order), which a count taken at once
    # could catch still open.
    refused_at_once(home, HEADER.pack(10))
    before = open_fds(server.pid)
    attempts = [
        (None, b""),  # a client that sends nothing (the server gives up on it after 2 s)
        (None, HEADER.pack(10)),  # a header without descriptors
        (7, b"{oops}!"),  # descriptors, then a body that is not JSON
        (100_000, b"[" * 100_000),  # descriptors, then JSON nested too deep
        (2**31, b""),  # descriptors, and a request far too large
        (2, b"[]"),  # descriptors, and JSON that is not a request
    ]
    for length, body in attempts:
        refused_at_once(home, body, length)
    assert server.poll() is None
    wait_until(lambda: open_fds(server.pid) == before, 10, "the server to hold no more descriptors than before")


def test_runs_in_flight_outlive_a_killed_fork_server(fork_server, forking_worker, tmp_path):
    server = fork_server()
    marker = tmp_path / "ran.json"
    flow_run_id = forking_worker.run(marker=str(marker), sleep_seconds=5)
    child = probe_marker(marker)["pid"]
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    assert alive(child)
    assert final_state(flow_run_id) == "COMPLETED"  # its own exit status reached the worker
