"""Real registry platforms for the integration tests, and an API wired to them.

- ``mlflow_server``: ``mlflow server`` with the basic-auth app (SQLite backend, one worker, job
  execution off) on a free loopback port, for the session; its admin is the only valid login.
- ``moto``: moto's ``ThreadedMotoServer`` (SageMaker, CloudWatch, IAM) on a free loopback port.
- ``vertex``: the wire-level Vertex AI fake with a token endpoint, fresh per test.

The platform tests (``platforms/``) run on SQLite only (the store functions have their own test on
every backend) and set ``MODELPULSE_DATABASE_URL`` so flows run in this process write to the test's
database.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SESSION_DIR
from tests.fakes.vertex_ai import VertexAiServer, new_service_account
from tests.support.servers import free_port, start_process, stop_process, wait_until_ready

MLFLOW_ADMIN = "admin"
AWS_REGION = "us-east-1"
VERTEX_PROJECT = "demo-project"
VERTEX_LOCATION = "us-central1"
VERTEX_PARENT = f"projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}"


class MlflowServer:
    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.password = password
        self.http = httpx.Client(base_url=f"{url}/api/2.0/mlflow", auth=(MLFLOW_ADMIN, password), timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call MLflow's REST API as its admin (the test's own view of the platform)."""
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session", autouse=True)
def _mlflow_process() -> Iterator[tuple[str, str, Any]]:
    """Start ``mlflow server`` first thing, so its slow start overlaps the Prefect server's."""
    home = SESSION_DIR / "mlflow"
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
    return MlflowServer(url, password)


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
    from store.db import get_engine, get_sessionmaker
    from store.settings import get_settings

    def forget_default_database() -> None:
        # The default engine is cached for the process; flows run here must see this test's database.
        get_settings.cache_clear()
        get_sessionmaker.cache_clear()
        get_engine.cache_clear()

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
