"""Machines of the production shape, for the production tests and the capacity bench alike.

A ``RoleSet`` is one machine: ``modelpulse up --roles ...`` started as a user would, with its own
``MODELPULSE_HOME``, ports and environment (``machine_environment``); it can be killed in part,
restarted or stopped. A ``Cluster`` is two of them sharing one PostgreSQL, one Redis and one Prefect
server (``tests/production/conftest.py`` builds it as a fixture).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.databases import PostgresServer, RedisServer
from tests.support.processes import descendants, read_output_until, still_running

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RoleSet:
    """One machine: ``modelpulse up --roles ...`` with its own home, ports and environment."""

    name: str
    roles: str
    env: dict[str, str]
    home: Path
    api_port: int
    process: subprocess.Popen | None = None
    output: str = ""
    key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 300) -> RoleSet:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stack.cli", "up", "--roles", self.roles],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._read_until(r"Press Ctrl-C to stop", timeout)
        match = re.search(r"API key:\s+(\S+)", self.output)
        self.key = match.group(1) if match else None
        return self

    def _read_until(self, pattern: str, timeout: float) -> None:
        match, self.output = read_output_until(self.process, pattern, timeout, self.output)
        if match is None:
            raise AssertionError(f"{self.name}: no {pattern!r} within {timeout}s:\n{self.output}\n{self.log_tails()}")

    def log_tails(self, size: int = 3000) -> str:
        logs = self.home / "logs"
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-size:]}" for path in sorted(logs.glob("*.log"))
        )

    def processes(self, fragment: str) -> list[int]:
        """The pids of this machine's processes whose command line contains ``fragment``."""
        return [pid for pid, cmdline in descendants(self.process.pid) if fragment in cmdline]

    def kill(self, fragment: str, sig: int = signal.SIGKILL, tree: bool = False) -> list[int]:
        """Send ``sig`` to the first process matching ``fragment`` (and its children when ``tree``)."""
        pids = self.processes(fragment)
        assert pids, f"{self.name} runs no {fragment!r}"
        targets = [pids[0], *([pid for pid, _ in descendants(pids[0])] if tree else [])]
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return targets

    def stop(self) -> list[str]:
        """Ctrl-C, as a user stops ``up``; kills and returns whatever it started that outlived it."""
        if self.process is None or self.process.poll() is not None:
            return []
        started = descendants(self.process.pid)
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        deadline = time.monotonic() + 10
        while (survivors := [p for p in still_running(pid for pid, _ in started) if p in started]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        for pid, _ in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return [command for _, command in survivors]


@dataclass
class Cluster:
    """PostgreSQL, Redis, and two machines sharing them; ``a`` runs the Prefect server."""

    postgres: PostgresServer
    redis: RedisServer
    a: RoleSet
    b: RoleSet
    prefect_api_url: str
    database_url: str

    @property
    def machines(self) -> tuple[RoleSet, RoleSet]:
        return self.a, self.b

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.a.key}"}

    def api(self, machine: RoleSet | None = None) -> httpx.Client:
        return httpx.Client(base_url=(machine or self.a).api_url, headers=self.headers, timeout=30)


def machine_environment(home: Path, api_port: int, shared: dict[str, str], **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MODELPULSE_"))}
    env |= shared
    env |= {
        "MODELPULSE_HOME": str(home),
        "MODELPULSE_API_PORT": str(api_port),
        "MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",  # receivers and fakes are on loopback
        # Workers look for scheduled runs every second (Prefect's default: 10 s).
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    env |= settings
    return env
