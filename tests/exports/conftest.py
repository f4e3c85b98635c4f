"""Export tests share one migrated SQLite database (each test has its own organization) that this
process and every worker it starts reach through ``MODELPULSE_DATABASE_URL``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import SESSION_DIR
from tests.fakes.datadog import DatadogFake
from tests.fakes.elasticsearch import ElasticsearchFake
from tests.fakes.splunk import SplunkHecFake


def _forget_cached_settings() -> None:
    from store.db import get_engine, get_sessionmaker
    from store.settings import get_settings

    get_settings.cache_clear()
    get_sessionmaker.cache_clear()
    get_engine.cache_clear()


@pytest.fixture(scope="session")
def exports_database(prefect_server) -> Iterator[str]:
    from store.migrate import upgrade

    url = f"sqlite:///{SESSION_DIR / 'exports.db'}"
    upgrade(url)
    previous = os.environ.get("MODELPULSE_DATABASE_URL")
    os.environ["MODELPULSE_DATABASE_URL"] = url
    _forget_cached_settings()
    from blocks.connections import register_block_types

    register_block_types()
    yield url
    if previous is None:
        os.environ.pop("MODELPULSE_DATABASE_URL", None)
    else:
        os.environ["MODELPULSE_DATABASE_URL"] = previous
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
