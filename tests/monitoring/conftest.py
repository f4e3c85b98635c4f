"""Monitoring fixtures: the flows read the database from the settings, so point them at the test's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from store import db as store_db
from store.settings import get_settings


def _forget_cached_database() -> None:
    get_settings.cache_clear()
    store_db.forget_engines()


@pytest.fixture
def flows_database(database_url, monkeypatch) -> Iterator[str]:
    """The API's and the flows' database are the same one, as in production (MODELPULSE_DATABASE_URL)."""
    monkeypatch.setenv("MODELPULSE_DATABASE_URL", database_url)
    _forget_cached_database()
    yield database_url
    _forget_cached_database()


@pytest.fixture
def api_client(database_url):
    """A client of the API for views that start no flow (no Prefect server needed)."""
    from api import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url}).test_client()


@pytest.fixture
def flow_client(flows_database, client):
    """A client of the API whose in-process flows reach the test Prefect server and database."""
    return client


T0 = datetime(2026, 11, 1, tzinfo=UTC)
REFERENCE = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}
CURRENT = {"from": (T0 + timedelta(hours=2)).isoformat(), "to": (T0 + timedelta(hours=3)).isoformat()}


def make_records(model: str, start: datetime, count: int, shift: float = 0.0, seed: int = 0, **extra) -> list[dict]:
    """``count`` records one second apart from ``start``: numeric ``x`` (shifted), stable ``y``, ``color``."""
    rng = np.random.default_rng(seed)
    colors = ["red", "green", "blue"] + (["purple"] if shift else [])
    return [
        {
            "model": model,
            "model_version": "1",
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "features": {
                "x": float(rng.normal(shift, 1.0)),
                "y": float(rng.normal(0.0, 1.0)),
                "color": colors[int(rng.integers(0, len(colors)))],
            },
            "prediction": float(rng.random()),
            **extra,
        }
        for i in range(count)
    ]
