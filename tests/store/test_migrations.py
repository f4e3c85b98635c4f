"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

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


def test_elasticsearch_exports_stored_before_modes_keep_shipping_to_indices(tmp_path):
    from sqlalchemy import create_engine, text

    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'modes.db'}"
    upgrade(url, "0009_registry_push")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO organizations (id, created_at) VALUES ('org_1', '2026-11-01 00:00:00')"))
        for export_id, type_, config in [
            ("exp_es", "elasticsearch", '{"url": "https://es:9200"}'),
            ("exp_ds", "elasticsearch", '{"url": "https://es:9200", "mode": "data_stream"}'),
            ("exp_dd", "datadog", '{"site": "datadoghq.com"}'),
        ]:
            connection.execute(
                text(
                    "INSERT INTO exports (id, organization_id, name, type, config, secret_fields, streams, "
                    "enabled, status, created_at, updated_at) VALUES (:id, 'org_1', :id, :type, :config, '[]', "
                    "'[\"inference_logs\"]', 1, 'active', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
                ),
                {"id": export_id, "type": type_, "config": config},
            )

    upgrade(url)

    with engine.connect() as connection:
        configs = dict(connection.execute(text("SELECT id, config FROM exports")).all())
    assert json.loads(configs["exp_es"]) == {"url": "https://es:9200", "mode": "index"}
    assert json.loads(configs["exp_ds"])["mode"] == "data_stream"
    assert "mode" not in json.loads(configs["exp_dd"])
