"""Real registry platforms for the integration tests, and an API wired to them.

- ``mlflow_server``: ``mlflow server`` with the basic-auth app (SQLite backend, one worker, job
  execution off) on a free loopback port, for the session; its admin is the only valid login. Its
  webhooks may target loopback over http (``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``,
  ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS``), see a new webhook at once (``MLFLOW_WEBHOOK_CACHE_TTL=0``)
  and retry a failed delivery once; it logs each delivery it gave up on (``failed_deliveries``).
- ``live_api``: the app under test served by a real HTTP server on 127.0.0.1 (so MLflow can post to
  its inbound route), its address the app's ``PUBLIC_URL``; it can be stopped and started again.
- ``moto``: moto's ``ThreadedMotoServer`` (SageMaker, CloudWatch, IAM) on a free loopback port.
- ``vertex``: the wire-level Vertex AI fake with a token endpoint, fresh per test.

The platform tests (``platforms/``) run on SQLite only (the store functions have their own test on
every backend) and set ``MODELPULSE_DATABASE_URL`` so flows run in this process write to the test's
database.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from tests.conftest import WORKER_DIR
from tests.fakes.vertex_ai import VertexAiServer, new_service_account
from tests.support.servers import SHUTDOWN_POLL_SECONDS, free_port, start_process, stop_process, wait_until_ready

MLFLOW_ADMIN = "admin"
# Loopback http webhooks (tests only), a new webhook seen at once, one retry of a failed delivery,
# and webhook secrets that survive a restart of the server.
MLFLOW_WEBHOOK_TEST_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "0",
    "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_WEBHOOK_REQUEST_TIMEOUT": "10",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
}
AWS_REGION = "us-east-1"
VERTEX_PROJECT = "demo-project"
VERTEX_LOCATION = "us-central1"
VERTEX_PARENT = f"projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}"


class MlflowServer:
    def __init__(self, url: str, password: str, log: Path) -> None:
        self.url = url
        self.password = password
        self.log = log
        self.http = httpx.Client(base_url=f"{url}/api/2.0/mlflow", auth=(MLFLOW_ADMIN, password), timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call MLflow's REST API as its admin (the test's own view of the platform)."""
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def failed_deliveries(self, url: str) -> int:
        """How many webhook deliveries to ``url`` the server has given up on (it logs each one)."""
        return self.log.read_text(errors="replace").count(f"Failed to send webhook to {url} ")


@pytest.fixture(scope="session", autouse=True)
def _mlflow_process(request) -> Iterator[tuple[str, str, Any] | None]:
    """Start ``mlflow server`` first thing, so its slow start overlaps the Prefect server's; not at
    all when no selected test needs it (``make check`` deselects them)."""
    if not any("mlflow_server" in item.fixturenames for item in request.session.items):
        yield None
        return
    home = WORKER_DIR / "mlflow"
    home.mkdir(exist_ok=True)
    password = "pw-" + secrets.token_urlsafe(12)
    auth_config = home / "auth.ini"
    auth_config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{home / 'auth.db'}\n"
        f"admin_username = {MLFLOW_ADMIN}\nadmin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **MLFLOW_WEBHOOK_TEST_ENV,
    }
    argv = [
        str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--default-artifact-root", str(home / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = start_process(argv, home / "server.log", env=env)
    try:
        yield f"http://127.0.0.1:{port}", password, process
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def mlflow_server(_mlflow_process) -> MlflowServer:
    url, password, process = _mlflow_process
    wait_until_ready(f"{url}/health", process, timeout=120)
    return MlflowServer(url, password, WORKER_DIR / "mlflow" / "server.log")


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto):
    """boto3 clients on moto (the test's own view of the platform)."""
    import boto3

    def client(service: str):
        return boto3.client(
            service,
            region_name=AWS_REGION,
            endpoint_url=moto,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture
def vertex() -> Iterator[VertexAiServer]:
    with VertexAiServer() as server:
        yield server


@pytest.fixture
def service_account(vertex) -> dict[str, Any]:
    """A throwaway service-account key whose public half the fake's token endpoint accepts."""
    info, public_pem = new_service_account(vertex.token_uri, VERTEX_PROJECT)
    vertex.fake.public_keys.append(public_pem)
    return info


@pytest.fixture
def app(sqlite_url, prefect_server, monkeypatch):
    from api import create_app
    from store.db import forget_engines
    from store.settings import get_settings

    def forget_default_database() -> None:
        # The default engine is cached for the process; flows run here must see this test's database.
        get_settings.cache_clear()
        forget_engines()

    monkeypatch.setenv("MODELPULSE_DATABASE_URL", sqlite_url)
    forget_default_database()
    yield create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "REGISTER_MODEL_WAIT_SECONDS": 60})
    forget_default_database()


@pytest.fixture
def create_integration(client, org):
    """``create_integration(type, config, credentials)`` through the API; returns the integration's base URL."""

    def create(type_: str, config: dict[str, Any], credentials: dict[str, Any]) -> str:
        body = {"name": f"{type_}-{secrets.token_hex(4)}", "type": type_, "config": config, "credentials": credentials}
        response = client.post(f"/organizations/{org.id}/integrations", json=body, headers=org.headers)
        assert response.status_code == 201, response.get_json()
        return f"/organizations/{org.id}/integrations/{response.get_json()['id']}"

    return create


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


class LiveApi:
    """A Flask app served on 127.0.0.1 by Werkzeug's threaded server; stop() and start() keep the port."""

    def __init__(self, app: Any, port: int) -> None:
        self.app, self.port = app, port
        self.url = f"http://127.0.0.1:{port}"
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None


@pytest.fixture
def live_api(app) -> Iterator[LiveApi]:
    port = free_port()
    server = LiveApi(app, port)
    app.config["PUBLIC_URL"] = server.url
    server.start()
    try:
        yield server
    finally:
        server.stop()
