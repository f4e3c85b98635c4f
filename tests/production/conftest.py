"""The production shape on one host: two "machines" (role sets with their own ``MODELPULSE_HOME``)
sharing one PostgreSQL, one Redis and one Prefect server (on that PostgreSQL, with Redis messaging).

    machine A: modelpulse up --roles prefect,api,worker,dispatcher
    machine B: modelpulse up --roles api,worker,dispatcher     (MODELPULSE_PREFECT_API_URL -> A's)

Each is started with the documented command, as a user would, and killed, restarted or stopped by
the tests. PostgreSQL and Redis are started here from the machine's packages (``.ci/run`` installs
them); where they are missing, the tests skip and say why.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.databases import (
    POSTGRES_MISSING,
    REDIS_MISSING,
    PostgresServer,
    RedisServer,
    postgres_binaries,
    redis_binary,
)
from tests.support.processes import descendants, still_running
from tests.support.servers import free_port

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
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.output += chunk.decode(errors="replace")
                if re.search(pattern, self.output):
                    return
            elif self.process.poll() is not None:
                break
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


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    """Extra environment for both machines; a test module overrides this fixture to change settings."""
    return {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_settings) -> Iterator[Cluster]:
    """The two-machine production shape, fresh for each test module (with its ``cluster_settings``)."""
    if postgres_binaries() is None:
        pytest.skip(POSTGRES_MISSING)
    if redis_binary() is None:
        pytest.skip(REDIS_MISSING)
    base = tmp_path_factory.mktemp("production")
    postgres = PostgresServer.start_new()
    redis = RedisServer.start_new(base / "redis")
    suffix = uuid.uuid4().hex[:8]
    postgres.create_database(f"modelpulse_{suffix}")
    postgres.create_database(f"prefect_{suffix}")
    prefect_port = free_port()
    prefect_api_url = f"http://127.0.0.1:{prefect_port}/api"
    shared = {
        "MODELPULSE_DATABASE_URL": postgres.url(f"modelpulse_{suffix}"),
        "MODELPULSE_REDIS_URL": redis.url,
        **cluster_settings,
    }
    a = RoleSet(
        "machine-a",
        "prefect,api,worker,dispatcher",
        machine_environment(
            base / "a",
            api_port := free_port(),
            shared,
            MODELPULSE_PREFECT_PORT=str(prefect_port),
            MODELPULSE_PREFECT_DATABASE_URL=postgres.url(f"prefect_{suffix}", "asyncpg"),
        ),
        base / "a",
        api_port,
    )
    b = RoleSet(
        "machine-b",
        "api,worker,dispatcher",
        machine_environment(base / "b", api_port := free_port(), shared, MODELPULSE_PREFECT_API_URL=prefect_api_url),
        base / "b",
        api_port,
    )
    cluster = Cluster(postgres, redis, a, b, prefect_api_url, shared["MODELPULSE_DATABASE_URL"])
    try:
        a.start()
        b.start()
        yield cluster
    except BaseException:
        print(a.log_tails(), b.log_tails(), sep="\n")
        raise
    finally:
        survivors = b.stop() + a.stop()
        redis.stop()
        postgres.destroy()
    # `up` stops everything it started (a leftover gunicorn worker or flow run would hold memory and ports).
    assert not survivors, f"processes outlived `up`'s stop: {survivors}"
