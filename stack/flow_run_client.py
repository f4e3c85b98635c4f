"""``modelpulse-flow-run``: how Prefect's process worker starts a flow run on a ModelPulse machine.

The work pool's command (``stack.cli prefect-setup``) is this script in place of Prefect's default
``python -m prefect.engine``. It asks this machine's flow-run fork server (``stack.flow_run_forks``) for a
child that has already imported Prefect, ModelPulse and the sinks' clients, hands it its own stdin,
stdout and stderr and the environment the worker prepared, forwards the signals the worker sends
(cancellation: SIGTERM, then SIGKILL, which the server answers by killing the child), and exits with the
child's status. To the worker it is the flow-run process; the run costs a fork instead of a new
interpreter's ~1.5 CPU-s of imports.

With no fork server to reach (one being restarted, a worker started by hand), it becomes
``python -m prefect.engine`` as before: slower, never lost.

Standard library only, and nothing of ModelPulse's beyond this module: it runs once per flow run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import sys

HEADER = struct.Struct("!I")  # the request's length, sent with the three file descriptors
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
NO_STATUS = 1  # the child ended and nothing reported how: the worker then marks the run crashed


def address(home: str) -> str:
    """The fork server's socket in the abstract namespace (Linux): one per ModelPulse home, nothing on
    disk to leave behind, no length limit from a deep home. The server admits only its own user."""
    digest = hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:24]
    return f"\0modelpulse-flow-runs-{digest}"


def connect(home: str | None) -> socket.socket | None:
    if not home:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address(home))
    except OSError:
        sock.close()
        return None
    return sock


def request_bytes(argv: list[str]) -> bytes:
    return json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()


def run_forked(sock: socket.socket, argv: list[str]) -> int:
    """Send the request, then relay signals to the child until its status arrives."""
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child:
            try:
                os.kill(child[0], signum)
            except ProcessLookupError:
                pass
        else:
            pending.append(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    payload = request_bytes(argv)
    socket.send_fds(sock, [HEADER.pack(len(payload))], [0, 1, 2])
    sock.sendall(payload)
    for message in messages(sock):
        if "pid" in message:
            child.append(int(message["pid"]))
            for signum in pending:
                forward(signum, None)
        elif "exit" in message:
            return int(message["exit"])
        elif "fallback" in message:
            return -1
    return NO_STATUS


def messages(sock: socket.socket):
    """The server's (and the child's) newline-delimited JSON messages, until the connection closes."""
    buffer = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def run_engine_here(argv: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *argv])


def main() -> None:
    argv = sys.argv[1:]
    sock = connect(os.environ.get("MODELPULSE_HOME"))
    if sock is None:
        run_engine_here(argv)
    code = run_forked(sock, argv)
    if code == -1:  # the server asked for a fresh interpreter (its code changed on disk)
        sock.close()
        run_engine_here(argv)
    sys.exit(code)


if __name__ == "__main__":
    main()
