"""Export tests share one migrated SQLite database (each test has its own organization) that this
process and every worker it starts reach through ``MODELPULSE_DATABASE_URL``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import WORKER_DIR
from tests.fakes.datadog import DatadogFake
from tests.fakes.elasticsearch import ElasticsearchFake
from tests.fakes.splunk import SplunkHecFake


def _forget_cached_settings() -> None:
    from store.db import forget_engines
    from store.settings import get_settings

    get_settings.cache_clear()
    forget_engines()


@pytest.fixture(scope="session")
def _exports_database_file(prefect_server) -> str:
    from store.migrate import upgrade

    url = f"sqlite:///{WORKER_DIR / 'exports.db'}"
    upgrade(url)
    return url


@pytest.fixture
def exports_database(_exports_database_file, monkeypatch) -> Iterator[str]:
    """The exports database, named by ``MODELPULSE_DATABASE_URL`` for this test (set per test: a test
    of another directory, run before this one on the same xdist worker, may have left another)."""
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", _exports_database_file)
    _forget_cached_settings()
    yield _exports_database_file
    _forget_cached_settings()


@pytest.fixture
def org_id(exports_database) -> str:
    from tests.exports import seed

    return seed.organization()


@pytest.fixture
def es() -> Iterator[ElasticsearchFake]:
    with ElasticsearchFake(username="elastic", password="es-secret-pw-7f3a") as fake:
        yield fake


@pytest.fixture
def hec() -> Iterator[SplunkHecFake]:
    with SplunkHecFake(token="hec-secret-token-91bd") as fake:
        yield fake


@pytest.fixture
def datadog() -> Iterator[DatadogFake]:
    with DatadogFake(api_key="dd-secret-api-key-c0ffee") as fake:
        yield fake


WORK_POOL = "modelpulse-exports-tests"  # its own pool: no other suite's worker picks up these runs


@pytest.fixture(scope="session")
def export_template(_exports_database_file) -> str:
    """``prefect deploy`` of this repository's ``prefect.yaml`` (the ``export`` template) to a test pool."""
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from tests.conftest import ROOT

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
        except ObjectAlreadyExists:
            pass
    subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", "export", "--pool", WORK_POOL],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=240,
    )
    return WORK_POOL


@pytest.fixture
def api(exports_database, export_template, org_id):
    """A Flask test client on the exports database, and headers with a key of ``org_id``."""
    from api import create_app
    from store.db import session_scope
    from store.organizations import create_api_key

    with session_scope() as session:
        key = create_api_key(session, org_id)
    client = create_app({"TESTING": True, "DATABASE_URL": exports_database}).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client
