"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from store.models import Base


def test_migrations_match_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_ids_sort_by_creation_time():
    from store.ids import new_id

    ids = [new_id("evt") for _ in range(2000)]
    assert all(len(i) == 30 and i.startswith("evt_") for i in ids)
    assert len(set(ids)) == len(ids)
    # sorted within the same millisecond is random, across milliseconds it is creation order
    assert [i[4:14] for i in ids] == sorted(i[4:14] for i in ids)
