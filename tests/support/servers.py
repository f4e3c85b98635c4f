"""Start and stop real servers for tests: free loopback ports, readiness polling, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

# How often a test's socketserver loop looks for shutdown(): the default, 0.5 s, is what every stop of a
# fake or receiver waited (a third of the fast suite's wall time, hundreds of servers stopped per run).
SHUTDOWN_POLL_SECONDS = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as error:
            last_error = error
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last_error}")


def start_process(argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
    log = open(log_path, "ab")
    return subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env or dict(os.environ),
        cwd=cwd,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
