"""The REST API: a Flask application factory.

Example:
    ```python
    from api import create_app
    app = create_app({"DATABASE_URL": "sqlite:////tmp/modelpulse.db"})
    ```
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from store.settings import get_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    settings = get_settings()
    app.config.from_mapping(
        DATABASE_URL=settings.resolved_database_url, PUBLIC_URL=settings.public_url, JSON_SORT_KEYS=False
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from api import db, errors
    from api.routes import (
        drift,
        events,
        export_runs,
        exports,
        inbound,
        inference_logs,
        integrations,
        meta,
        monitors,
        recommendations,
        registries,
        thresholds,
        webhook_deliveries,
        webhooks,
    )

    db.init_app(app)
    errors.init_app(app)
    for module in (meta, integrations, registries, inbound, exports, export_runs, webhooks, webhook_deliveries, events):
        app.register_blueprint(module.bp)
    for blueprint in (
        inference_logs.bp,
        drift.checks_bp,
        drift.metrics_bp,
        monitors.bp,
        thresholds.bp,
        recommendations.bp,
    ):
        app.register_blueprint(blueprint)
    app.url_map.strict_slashes = False
    return app
