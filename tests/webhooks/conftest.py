"""Webhook test fixtures: one database for the directory, the webhook dispatcher, receivers' settings.

The fan-out runs in a real dispatcher subprocess (``python -m flows.fan_out``), so it needs to know
the database up front: every test here shares one SQLite database and keeps apart by using its own
organization.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator

import pytest

from store.event_catalog import BY_TYPE
from store.settings import get_settings
from tasks.webhooks.settings import get_webhook_settings
from tests.conftest import ROOT, WORKER_DIR
from tests.support.servers import start_process, stop_process

# Short first retry so fail-then-succeed runs in a second; the rest is the production schedule.
TEST_ENV = {
    # Loopback receivers are reached through this switch alone, which the SSRF tests turn off.
    "MODELPULSE_ALLOWED_PRIVATE_NETWORKS": "",
    "MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
    "MODELPULSE_WEBHOOK_RETRY_SCHEDULE": "[1, 300, 1800, 7200, 18000, 36000, 36000]",
    "MODELPULSE_WEBHOOK_TIMEOUT_SECONDS": "5",
}


@pytest.fixture(scope="session")
def webhook_database_url(_sqlite_template) -> str:
    path = WORKER_DIR / "webhooks.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(webhook_database_url) -> str:
    """Overrides the per-test database: the dispatcher must see the same one."""
    return webhook_database_url


@pytest.fixture(autouse=True)
def webhook_env(monkeypatch, webhook_database_url) -> Iterator[None]:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", webhook_database_url)
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()
    yield
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()


@pytest.fixture
def deny_private(monkeypatch) -> None:
    """The production default: loopback and private targets refused."""
    monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")
    get_settings.cache_clear()


class FanOutWorker:
    """The webhook dispatcher (``python -m flows.fan_out``), restartable (a crash and a restart, in tests)."""

    def __init__(self, database_url: str) -> None:
        self.env = dict(os.environ) | TEST_ENV | {
            "MODELPULSE_DATABASE_URL": database_url,
            "PYTHONPATH": str(ROOT),
        }
        self.process = None
        self.log = WORKER_DIR / "fan-out-worker.log"

    def start(self) -> None:
        self.process = start_process([sys.executable, "-m", "flows.fan_out"], self.log, env=self.env, cwd=ROOT)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture(scope="session")
def fan_out_worker(prefect_server, webhook_database_url) -> Iterator[FanOutWorker]:
    worker = FanOutWorker(webhook_database_url)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def create_webhook(client, organization):
    """``create_webhook(url, events=[...], ...)`` through the API; returns the response JSON."""

    def _create(url: str, events: list[str] | None = None, **fields) -> dict:
        body = {"name": f"hook-{uuid.uuid4().hex[:8]}", "url": url, "events": events or ["drift.detected"]}
        response = client.post(
            f"/organizations/{organization.id}/webhooks", json=body | fields, headers=organization.headers
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return _create


@pytest.fixture
def publish(client, organization):
    """``publish(type, data, project_id=None)`` through the API; returns the event id.

    Without ``data``: a small drift.detected's, or the catalog's example of the type.
    """

    def _publish(type_: str = "drift.detected", data: dict | None = None, project_id: str | None = None) -> str:
        default = {"model": "churn", "metric": "psi", "value": 0.31} if type_ == "drift.detected" else None
        body = {"type": type_, "data": data or default or BY_TYPE[type_].example}
        if project_id:
            body["project_id"] = project_id
        response = client.post(f"/organizations/{organization.id}/events", json=body, headers=organization.headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    return _publish


@pytest.fixture
def history(client, organization):
    def _history(webhook_id: str, **query) -> list[dict]:
        response = client.get(
            f"/organizations/{organization.id}/webhooks/{webhook_id}/history",
            query_string=query,
            headers=organization.headers,
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["items"]

    return _history

