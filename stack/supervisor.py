"""``modelpulse up``: this machine's roles of the stack (all of them, on embedded defaults, by default).

With every role (``make up``): starts a Prefect server (SQLite under ``MODELPULSE_HOME``), prepares it
(work pool, block types, deployments from ``prefect.yaml``), starts the worker(s), the webhook
dispatcher(s) and the API under gunicorn, all bound to 127.0.0.1, then keeps them up: a process that
dies is started again. Ctrl-C (or SIGTERM) stops every process it started. ``--roles`` runs a part of
the stack against shared PostgreSQL, Redis and Prefect (``stack.topology``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import httpx

from stack.topology import (
    ROLES,
    ROOT,
    TopologyError,
    check_roles,
    local_host,
    metrics_directory,
    role_commands,
    stack_environment,
    worker_name,
)
from store.metrics import compact_unless_busy
from store.settings import Settings

# A process that dies is started again after this long, doubling up to the cap while it keeps dying;
# one that ran this long before dying counts as healthy again.
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
HEALTHY_AFTER_SECONDS = 60.0
METRICS_FOLD_SECONDS = 60.0


@dataclass
class Service:
    """A long-running process of the stack."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0  # restarts in a row, each after a short life
    started_at: float = 0.0
    restart_at: float | None = None  # when a dead process is due to start again


def services(settings: Settings, roles: Collection[str]) -> tuple[list[Service], list[Service]]:
    """The Prefect server's processes (when this machine runs the prefect role), then what runs once
    Prefect is prepared: process workers, webhook dispatchers and the API, as many as the settings ask."""
    commands = role_commands(settings)
    server: list[Service] = []
    if "prefect" in roles:
        ready = f"http://{local_host(settings)}:{settings.prefect_port}/api/health"
        server.append(Service("prefect-server", commands["prefect-server"], ready))
        if settings.redis_url:  # with Redis, the loop services are a process of their own
            server.append(Service("prefect-services", commands["prefect-services"]))
    rest: list[Service] = []
    if "worker" in roles:
        rest.append(Service("flow-run-forks", commands["flow-run-forks"]))
        for index in range(settings.workers):
            name = worker_name(settings, index + 1)
            rest.append(Service(f"prefect-worker-{index + 1}", [*commands["worker"], "--name", name]))
    if "dispatcher" in roles:
        rest += [Service(f"webhook-dispatcher-{i + 1}", commands["dispatcher"]) for i in range(settings.dispatchers)]
    if "api" in roles:
        rest.append(Service("api", commands["api"], f"http://{local_host(settings)}:{settings.api_port}/health"))
    return server, rest


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.env = stack_environment(settings)
        self.logs = settings.home.resolve() / "logs"
        self.metrics = metrics_directory(settings)
        self.running: list[Service] = []

    def clear_metrics(self) -> None:
        """A new stack counts from zero (as Prometheus expects of a restarted target): the files of the
        last one's processes go."""
        shutil.rmtree(self.metrics, ignore_errors=True)
        self.metrics.mkdir(parents=True)

    def start(self, service: Service, timeout: float = 120.0) -> None:
        self._spawn(service)
        self.running.append(service)
        if service.ready_url:
            self._wait_ready(service, timeout)

    def _spawn(self, service: Service) -> None:
        service.started_at = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{service.name}.log", "ab") as log:
            service.process = subprocess.Popen(
                service.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # A process group of its own: Ctrl-C in the terminal (SIGINT to the foreground group)
                # reaches `up` alone, which stops each process once. gunicorn workers that get the
                # terminal's SIGINT and their master's SIGQUIT together deadlock in their signal
                # handler and outlive the master.
                process_group=0,
                preexec_fn=_die_with_parent(),
            )

    def _wait_ready(self, service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.process and service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited; see {self.logs / (service.name + '.log')}")
            if _answers(service.ready_url):  # type: ignore[arg-type]
                return
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
                _kill_group(service.process)
        self.running.clear()

    def supervise(self) -> None:
        """Keep every process up until a signal arrives: one that dies is started again, after a delay
        that grows while it keeps dying (its log says why). A process killed on one machine loses no
        work: its claims and leases are taken over (see README, "Running in production").

        Once a minute it also folds the metrics files of ended processes (flow runs, mostly) together,
        so the directory stays small however long nobody scrapes."""
        fold_at = time.monotonic() + METRICS_FOLD_SECONDS
        while True:
            now = time.monotonic()
            if now >= fold_at:
                fold_at = now + METRICS_FOLD_SECONDS
                compact_unless_busy(self.metrics)
            for service in self.running:
                process = service.process
                if service.restart_at is None and process is not None and process.poll() is not None:
                    if now - service.started_at >= HEALTHY_AFTER_SECONDS:
                        service.restarts = 0
                    delay = RESTART_DELAYS[min(service.restarts, len(RESTART_DELAYS) - 1)]
                    print(
                        f"{service.name} exited with {process.returncode}; starting it again in {delay:g}s "
                        f"(log: {self.logs / (service.name + '.log')})",
                        file=sys.stderr,
                        flush=True,
                    )
                    service.restart_at = now + delay
                elif service.restart_at is not None and now >= service.restart_at:
                    service.restarts += 1
                    service.restart_at = None
                    self._spawn(service)
            time.sleep(0.5)


def _die_with_parent() -> Callable[[], None] | None:
    """What a service runs between fork and exec so that it gets SIGTERM when ``up`` dies, however it
    dies (SIGKILL, the OOM killer): each service has a process group of its own, so nothing else
    would reach it, and the next ``up`` would find its ports taken. Linux only (``PR_SET_PDEATHSIG``);
    elsewhere ``None``. The signal follows the thread that forked: services are started from ``up``'s
    main thread, which lives as long as ``up``."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # up died before the line above: nobody would send it
            os._exit(1)

    return set_parent_death_signal


PR_SET_PDEATHSIG = 1


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a service and the processes of its group (gunicorn's workers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} after {timeout:.0f}s")
        time.sleep(1.0)


def _database_current() -> bool:
    from store.migrate import is_current

    try:
        return is_current()
    except Exception:  # noqa: BLE001 - unreachable or not yet created: not current
        return False


def run(settings: Settings, roles: Collection[str], print_key: Callable[[], str]) -> int:
    """Bring this machine's roles up, print where everything is, and keep them up until interrupted.

    The machine with the prefect role migrates the database and prepares Prefect (work pool, block
    types, deployments); the others wait until both are ready, then start their processes.
    """
    try:
        check_roles(settings, roles)
    except TopologyError as error:
        print(f"modelpulse up: {error}", file=sys.stderr)
        return 2
    stack = Stack(settings)

    def _stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    # Started with SIGINT ignored (a non-interactive shell's `cmd &`, some CI runners), Python keeps it
    # ignored and Ctrl-C would never stop the stack: install the handler explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    python = sys.executable
    server, rest = services(settings, roles)
    primary = "prefect" in roles
    stack.clear_metrics()
    try:
        if primary:
            print("Migrating the ModelPulse database ...", flush=True)
            stack.run_step("migrate", [python, "-m", "stack.cli", "db", "upgrade"])
            print("Starting the Prefect server ...", flush=True)
            for service in server:
                stack.start(service)
            print("Preparing Prefect (work pool, block types, deployments) ...", flush=True)
            stack.run_step("prefect-setup", [python, "-m", "stack.cli", "prefect-setup"])
        else:
            print("Waiting for the Prefect server and a migrated database ...", flush=True)
            _wait_for(
                f"no Prefect server answered at {settings.resolved_prefect_api_url}",
                lambda: _answers(f"{settings.resolved_prefect_api_url}/health"),
                timeout=300,
            )
            _wait_for(
                "the ModelPulse database is not migrated (the machine with the prefect role migrates it; "
                "or run `modelpulse db upgrade`)",
                _database_current,
                timeout=300,
            )
        for service in rest:
            stack.start(service)
        _print_where(settings, roles, stack, print_key() if primary and "api" in roles else None)
        stack.supervise()
        return 0
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    except RuntimeError as error:
        print(f"modelpulse up: {error}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def _print_where(settings: Settings, roles: Collection[str], stack: Stack, key: str | None) -> None:
    api = f"http://{local_host(settings)}:{settings.api_port}"
    prefect_ui = settings.resolved_prefect_api_url.removesuffix("/api")
    names = ", ".join(role for role in ROLES if role in roles)
    lines = ["", "ModelPulse is up." if set(roles) == set(ROLES) else f"ModelPulse roles up: {names}."]
    if "api" in roles:
        lines += [f"  API:        {api}", f"  API docs:   {api}/docs   (OpenAPI: {api}/openapi.json)"]
    lines.append(f"  Prefect UI: {prefect_ui}")
    if key:
        lines.append(f"  API key:    {key}   (organization 'default')")
    counts = {"worker": settings.workers, "dispatcher": settings.dispatchers}
    ran = [f"{counts[r]} {r}(s)" for r in ("worker", "dispatcher") if r in roles]
    if ran:
        lines.append(f"  Processes:  {', '.join(ran)}")
    lines += [f"  Logs:       {stack.logs}", "Press Ctrl-C to stop."]
    print("\n".join(lines), flush=True)
