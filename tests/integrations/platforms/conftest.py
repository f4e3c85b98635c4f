"""The platform tests run on SQLite only: the API, its keys and the flows share the test's SQLite database."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url
