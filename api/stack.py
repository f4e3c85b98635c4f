"""``modelpulse up``: the whole stack on one machine, on embedded defaults.

Starts a Prefect server (SQLite under ``MODELPULSE_HOME``), prepares it (work pool, block types,
deployments from ``prefect.yaml``), starts the worker(s) and the API under gunicorn, all bound to
127.0.0.1, then waits. Ctrl-C (or SIGTERM) stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from store.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Service:
    """A long-running process of the stack."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def stack_environment(settings: Settings) -> dict[str, str]:
    """The environment every process of the stack shares."""
    home = settings.home.resolve()
    prefect_home = home / "prefect"
    env = dict(os.environ)
    env.update(
        {
            "MODELPULSE_HOME": str(home),
            "MODELPULSE_DATABASE_URL": settings.resolved_database_url,
            "MODELPULSE_API_PORT": str(settings.api_port),
            "MODELPULSE_PREFECT_PORT": str(settings.prefect_port),
            "MODELPULSE_ROOT": str(ROOT),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": f"http://127.0.0.1:{settings.prefect_port}/api",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{settings.prefect_port}/api",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            # Persisted flow and task results (what a retried run reuses) go here, not under the cwd.
            "PREFECT_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        }
    )
    return env


def services(settings: Settings) -> tuple[Service, list[Service]]:
    """The Prefect server, then what runs once it is prepared: the process worker for deployments,
    the webhook dispatcher, and the API."""
    python = sys.executable
    server = Service(
        "prefect-server",
        [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)],
        ready_url=f"http://127.0.0.1:{settings.prefect_port}/api/health",
    )
    workers = [
        Service(
            "prefect-worker",
            [python, "-m", "prefect", "worker", "start", "--pool", settings.work_pool, "--type", "process"],
        ),
        # The webhook dispatcher: polls the outbox and fans new events out as `fan-out-events` runs.
        Service("webhook-dispatcher", [python, "-m", "flows.fan_out"]),
        Service(
            "api",
            [
                python, "-m", "gunicorn", "api.wsgi:app",
                "--bind", f"127.0.0.1:{settings.api_port}",
                "--workers", "2", "--threads", "4", "--timeout", "60",
                "--access-logfile", "-",
                # gunicorn 26's control socket defaults to one path per user, shared by every stack.
                "--no-control-socket",
            ],
            ready_url=f"http://127.0.0.1:{settings.api_port}/health",
        ),
    ]
    return server, workers


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.env = stack_environment(settings)
        self.logs = settings.home.resolve() / "logs"
        self.running: list[Service] = []

    def start(self, service: Service, timeout: float = 120.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{service.name}.log", "ab")
        service.process = subprocess.Popen(
            service.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.running.append(service)
        if service.ready_url:
            self._wait_ready(service, timeout)

    def _wait_ready(self, service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.process and service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited; see {self.logs / (service.name + '.log')}")
            try:
                if httpx.get(service.ready_url, timeout=2).status_code == 200:  # type: ignore[arg-type]
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{service.name} not ready after {timeout:.0f}s; see {self.logs}")

    def run_step(self, name: str, argv: list[str]) -> None:
        """A one-shot preparation step; its output goes to the step's log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            result = subprocess.run(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if result.returncode != 0:
            raise RuntimeError(f"step {name!r} failed; see {self.logs / (name + '.log')}")

    def stop(self) -> None:
        for service in reversed(self.running):
            if service.process and service.process.poll() is None:
                service.process.terminate()
        deadline = time.monotonic() + 15
        for service in reversed(self.running):
            if service.process is None:
                continue
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        self.running.clear()

    def watch(self) -> int:
        """Block until a signal arrives or a service dies; returns the exit status."""
        while True:
            for service in self.running:
                if service.process and service.process.poll() is not None:
                    print(f"{service.name} exited with {service.process.returncode}; stopping.", file=sys.stderr)
                    return 1
            time.sleep(0.5)


def run(settings: Settings, print_key) -> int:  # noqa: ANN001 - a callback returning the key
    """Bring the stack up, print where everything is, and keep it up until interrupted."""
    stack = Stack(settings)

    def _stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    python = sys.executable
    server, rest = services(settings)
    try:
        print("Migrating the ModelPulse database ...", flush=True)
        stack.run_step("migrate", [python, "-m", "api.cli", "db", "upgrade"])
        print("Starting the Prefect server ...", flush=True)
        stack.start(server)
        print("Preparing Prefect (work pool, block types, deployments) ...", flush=True)
        stack.run_step("prefect-setup", [python, "-m", "api.cli", "prefect-setup"])
        for service in rest:
            stack.start(service)
        key = print_key()
        api = f"http://127.0.0.1:{settings.api_port}"
        print(
            "\nModelPulse is up.\n"
            f"  API:        {api}\n"
            f"  API docs:   {api}/docs   (OpenAPI: {api}/openapi.json)\n"
            f"  Prefect UI: http://127.0.0.1:{settings.prefect_port}\n"
            f"  API key:    {key}   (organization 'default')\n"
            f"  Logs:       {stack.logs}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        return stack.watch()
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    except RuntimeError as error:
        print(f"modelpulse up: {error}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
