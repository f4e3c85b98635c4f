"""The flow-run fork server (``python -m stack.flow_run_forks``): warm children for Prefect's worker.

A process worker starts every flow run as a new ``python -m prefect.engine``: ~1.5 CPU-s and ~1 s of
wall time importing Prefect, SQLAlchemy, ModelPulse and a sink's client before the flow's first line,
paid again by every export run and every scheduled sweep. This process imports all of that once, then
forks one child per flow run on request of ``modelpulse-flow-run`` (``stack.flow_run_client``, the work
pool's command). A fork costs a few milliseconds and shares the imported modules' memory.

Each run is still a process of its own, as with Prefect's worker: a flow run that crashes, hangs or is
killed takes no other run with it, Prefect's cancellation reaches it (the client forwards the worker's
signals; when the worker kills the client, this server kills the child), and its status is the client's
exit status, so the worker and the Prefect UI see what they always saw.

The server stays single-threaded (a fork copies only the forking thread: a lock another thread held
would stay held in the child forever) and never talks to Prefect itself. When one of ModelPulse's
source files changes on disk, it answers with "fall back" (the client runs the engine in a fresh
interpreter) and, once no child of its own is running, starts itself again on the new code.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import traceback
from dataclasses import dataclass

from prefect.logging import get_logger

from stack.flow_run_client import HEADER, address
from stack.prefect_warmup import warm_up
from stack.topology import ROOT
from store.settings import get_settings

OWN_PACKAGES = ("api", "blocks", "flows", "stack", "store", "tasks")
# Imported before the first fork: the engine, every deployment's flow (with the tasks, blocks and store
# they import) and the sinks' clients, which every export run needs. The registries' SDKs (mlflow,
# boto3, the Vertex SDK) are imported by the runs that use them: they are large, and most machines
# use one of them or none.
PRELOAD = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.deployments.steps",
    "tasks.sinks.elasticsearch",
    "tasks.sinks.splunk",
    "tasks.sinks.datadog",
    "elasticsearch",
    "datadog_api_client.v2.api.logs_api",
)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
INHERITED_LISTENER = "MODELPULSE_FLOW_RUN_FORKS_LISTENER_FD"
ADMIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

logger = get_logger("flow-run-forks")


@dataclass
class Child:
    pid: int
    conn: socket.socket
    pidfd: int
    client_connected: bool = True


def entrypoint_modules() -> list[str]:
    """``flows.export:export`` (or ``flows/export.py:export``) -> ``flows.export``, for every deployment of
    ``prefect.yaml``."""
    import yaml

    text = (ROOT / "prefect.yaml").read_text()
    modules = []
    for deployment in (yaml.safe_load(text) or {}).get("deployments") or []:
        module = str(deployment.get("entrypoint", "")).split(":", 1)[0].removesuffix(".py").replace("/", ".")
        if module:
            modules.append(module)
    return sorted(set(modules))


def preload() -> None:
    for name in (*PRELOAD, *entrypoint_modules()):
        importlib.import_module(name)


def source_mtimes() -> dict[str, float]:
    """The modification time of every loaded module file of ModelPulse's own packages."""
    roots = tuple(str(ROOT / package) + os.sep for package in OWN_PACKAGES)
    mtimes = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(roots):
            try:
                mtimes[path] = os.stat(path).st_mtime
            except OSError:
                mtimes[path] = -1.0
    return mtimes


class ForkServer:
    def __init__(self, home: str):
        self.address = address(home)
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, Child] = {}
        self.listener: socket.socket | None = None
        self.stopping = False
        self.restart = False
        self.loaded: dict[str, float] = {}

    # --- the loop -------------------------------------------------------------------------------

    def serve(self) -> None:
        self.loaded = source_mtimes()
        gc.freeze()  # the imported objects stay shared: no collection touches (and copies) their pages
        inherited = os.environ.pop(INHERITED_LISTENER, None)
        if inherited is not None:  # started again on new code: the same socket, nobody turned away
            listener = socket.socket(fileno=int(inherited))
        else:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.address)
            listener.listen(128)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, "accept")
        logger.info("ready to fork flow runs (pid %d)", os.getpid())
        while not (self.stopping or self.restart) or self.children:
            for key, _ in self.selector.select(timeout=1.0):
                try:
                    if key.data == "accept":
                        self.accept()
                    elif key.data[0] == "exit":
                        self.reap(key.data[1])
                    elif key.data[0] == "client":
                        self.client_gone(key.data[1])
                except Exception:  # noqa: BLE001 - one request's trouble must not end the others' runs
                    logger.exception("handling %s", key.data)
        if self.restart and not self.stopping:
            logger.info("ModelPulse's code changed on disk: starting again on the new code")
            assert self.listener is not None
            self.listener.set_inheritable(True)  # requests meanwhile wait in its backlog
            os.environ[INHERITED_LISTENER] = str(self.listener.fileno())
            os.execv(sys.executable, [sys.executable, "-m", "stack.flow_run_forks"])
        self.close_listener()

    def close_listener(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def stop(self, signum: int, _frame: object) -> None:
        """Accept no more; pass the signal on to the running children and exit when they have."""
        self.stopping = True
        self.close_listener()
        for child in self.children.values():
            _signal(child.pid, signum)

    # --- a request ------------------------------------------------------------------------------

    def accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        try:
            if not same_user(conn):
                raise PermissionError("a client of another user")
            conn.settimeout(2)  # a client sends its request at once; this loop serves everyone
            request, fds = receive(conn)
        except EOFError:
            conn.close()
            return
        except (OSError, ValueError, RecursionError) as error:
            logger.warning("refused a flow-run request: %s", error)
            conn.close()
            return
        try:
            if source_mtimes() != self.loaded:
                self.restart = True
                reply(conn, {"fallback": "code changed"})
                conn.close()
                return
            self.fork(conn, request, fds)
        finally:
            for fd in fds:
                os.close(fd)

    def fork(self, conn: socket.socket, request: dict, fds: list[int]) -> None:
        assert threading.active_count() == 1, "the fork server must stay single-threaded"
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            self.close_in_child(keep=conn)
            run_child(conn, request, fds)  # never returns
        pidfd = os.pidfd_open(pid)
        child = Child(pid, conn, pidfd)
        self.children[pid] = child
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("client", pid))
        reply(conn, {"pid": pid})

    def close_in_child(self, keep: socket.socket) -> None:
        """What a child must not hold: the listener (a restarted server could not bind its address) and
        the other runs' connections and process handles."""
        if self.listener is not None:
            self.listener.close()
        for child in self.children.values():
            child.conn.close()
            os.close(child.pidfd)
        self.selector.close()

    def reap(self, pid: int) -> None:
        child = self.children.pop(pid)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        reply(child.conn, {"exit": code if code >= 0 else 128 - code})
        self.selector.unregister(child.pidfd)
        if child.client_connected:
            self.selector.unregister(child.conn)
        os.close(child.pidfd)
        child.conn.close()

    def client_gone(self, pid: int) -> None:
        """The client closed its end: the worker killed it (the run ends with it), or the child's own exit
        message reached it first (the child is already exiting)."""
        child = self.children[pid]
        try:
            if child.conn.recv(1, socket.MSG_PEEK):
                return  # a client sends nothing after its request; ignore noise, keep waiting
        except OSError:
            pass
        self.selector.unregister(child.conn)
        child.client_connected = False
        _signal(pid, signal.SIGKILL)


def same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    _pid, uid, _gid = (int.from_bytes(creds[i : i + 4], sys.byteorder) for i in (0, 4, 8))
    return uid == os.getuid()


def receive(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _flags, _addr = socket.recv_fds(conn, HEADER.size, 3)
    if not header and not fds:
        raise EOFError  # connected and closed: someone checking that the server is up
    if len(fds) != 3 or len(header) != HEADER.size:
        for fd in fds:
            os.close(fd)
        raise ValueError("expected a header and three file descriptors")
    try:
        (length,) = HEADER.unpack(header)
        if length > MAX_REQUEST_BYTES:
            raise ValueError(f"request of {length} bytes")
        body = bytearray()
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                raise ValueError("request cut short")
            body += chunk
        request = json.loads(body)
        if (not isinstance(request, dict) or not isinstance(request.get("env"), dict)
                or not isinstance(request.get("argv"), list) or not isinstance(request.get("cwd"), str)):
            raise ValueError("malformed request")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def reply(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the client is gone; its child is killed when the server notices


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


# --- the child --------------------------------------------------------------------------------


def run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """Become the flow-run process ``python -m prefect.engine`` would have been, then exit."""
    code = 1
    try:
        for signum in (*ADMIN_SIGNALS, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items() if v is not None})
        # The worker that started this run checked the server's version when it started; each client the
        # run creates would ask again (two or three requests a run). Prefect's setting is meant for this.
        os.environ.setdefault("PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED", "false")
        sys.argv = ["prefect.engine", *map(str, request["argv"])]
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()  # Prefect's settings from the environment the worker prepared
        get_settings.cache_clear()
        code = run_engine()
        threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter does at exit: Prefect drains its log and event queues here
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - the child must reach os._exit whatever happened
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        reply(conn, {"exit": code})
        os._exit(code)


def run_engine() -> int:
    import prefect.engine

    try:
        # The engine's `__main__` block, as `python -m prefect.engine` runs it (by path: the module itself
        # is imported already, and running it by name again would warn).
        runpy.run_path(prefect.engine.__file__, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code is None:
            return 0
        if isinstance(exit_.code, int):
            return exit_.code
        print(exit_.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    from prefect.logging.configuration import setup_logging

    setup_logging()  # as Prefect's CLI does: its console handler, at PREFECT_LOGGING_LEVEL
    preload()
    settings = get_settings()
    warm_up(settings.resolved_database_url)  # what each run would otherwise compute for itself
    server = ForkServer(str(settings.home))
    for signum in ADMIN_SIGNALS:
        signal.signal(signum, server.stop)
    server.serve()


if __name__ == "__main__":
    main()
