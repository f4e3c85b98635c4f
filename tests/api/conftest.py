"""Fixtures of the API tests: ``served``, the API under gunicorn (the argv `make up` uses) as a real HTTP
server, with a key of organization ``acme``; module-scoped, so each module using it has a server and a
database of its own (slow: tests/conftest.py's SLOW_FIXTURES)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.topology import role_commands
from store.db import session_scope
from store.organizations import create_api_key
from store.settings import Settings
from tests.conftest import ROOT
from tests.support.servers import free_port, start_process, stop_process, wait_until_ready


@dataclass
class Served:
    url: str
    port: int
    key: str
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def served(_sqlite_template, prefect_server, tmp_path_factory) -> Iterator[Served]:
    """The API under gunicorn with the argv `make up` uses (stack/topology.py), on its own SQLite database."""
    directory = tmp_path_factory.mktemp("served")
    database = directory / "modelpulse.db"
    shutil.copyfile(_sqlite_template, database)
    url = f"sqlite:///{database}"
    with session_scope(url) as session:
        key = create_api_key(session, "acme")
    port = free_port()
    argv = role_commands(Settings(api_port=port))["api"]
    log = directory / "gunicorn.log"
    process = start_process(argv, log, env=dict(os.environ, MODELPULSE_DATABASE_URL=url), cwd=ROOT)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", process)
        yield Served(f"http://127.0.0.1:{port}", port, key, log)
    finally:
        stop_process(process)
