"""gunicorn's entry point, ``api.wsgi:app`` (served for real by the slow tests): it builds the app
from the environment's settings, and keeps the Prefect client's retries short."""

from __future__ import annotations

import importlib
import sys

from store.settings import get_settings


def test_the_wsgi_module_builds_the_app_from_the_environment(sqlite_url, monkeypatch):
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", sqlite_url)
    # setdefault() in api.wsgi: set here first, so the module changes nothing that outlives the test.
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "1")
    monkeypatch.setenv("PREFECT_API_REQUEST_TIMEOUT", "10")
    monkeypatch.delitem(sys.modules, "api.wsgi", raising=False)
    get_settings.cache_clear()
    try:
        wsgi = importlib.import_module("api.wsgi")
        assert wsgi.app.config["DATABASE_URL"] == sqlite_url
        assert wsgi.app.test_client().get("/health").status_code == 200
    finally:
        get_settings.cache_clear()
