"""The fork server's warm-up (``stack.prefect_warmup``): what every forked flow run would otherwise build
for itself is built once, in a fresh interpreter that has done what the server does before its first
fork (``preload()``, then ``warm_up()``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import json, ssl, sys
from stack.flow_run_forks import preload
from stack.prefect_warmup import FIRST_USE_MODULES, TLS_CLIENT_MODULES, incomplete_client_models, warm_up

preload()
incomplete_before = len(incomplete_client_models())
from store.models import Export
mapped_before = Export.__mapper__.configured
warm_up("sqlite:////tmp/warmup-probe.db")

import certifi
from importlib import import_module
from prefect.settings import PREFECT_API_SSL_CERT_FILE

cafile = PREFECT_API_SSL_CERT_FILE.value() or certifi.where()
contexts = [import_module(name).ssl.create_default_context(cafile=cafile) for name in TLS_CLIENT_MODULES]
unverified = import_module(TLS_CLIENT_MODULES[0]).ssl.create_default_context()
print(json.dumps({
    "incomplete_before": incomplete_before,
    "incomplete_after": [f"{m.__module__}.{m.__qualname__}" for m in incomplete_client_models()],
    "one_context": len({id(c) for c in contexts}) == 1,
    "verifies": all(c.verify_mode == ssl.CERT_REQUIRED and c.check_hostname for c in contexts),
    "unverified_not_shared": unverified is not contexts[0],
    "first_use_imported": [name for name in FIRST_USE_MODULES if name not in sys.modules],
    "driver": "sqlite3" in sys.modules,
    "mappers": [mapped_before, Export.__mapper__.configured],
}))
"""


@pytest.fixture
def fresh_interpreter():
    """Runs ``code`` in a new interpreter from the project root and returns the JSON it printed last (its
    own fixture so that tests/conftest.py counts these tests slow: the probe imports Prefect and every flow)."""

    def run(code: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run


def test_warm_up_builds_once_what_each_run_would(fresh_interpreter):
    found = fresh_interpreter(PROBE)
    assert found["incomplete_before"] > 50  # Prefect defers most of its client schemas to first use
    assert found["incomplete_after"] == []
    assert found["one_context"] is True  # Prefect's clients, version check and websockets share one
    assert found["verifies"] is True
    assert found["unverified_not_shared"] is True
    assert found["first_use_imported"] == []
    assert found["driver"] is True
    assert found["mappers"] == [False, True]  # configured here, not by each run's first query
