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
    app.config.from_mapping(DATABASE_URL=get_settings().resolved_database_url, JSON_SORT_KEYS=False)
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from api import db, errors
    from api.routes import (
        events,
        exports,
        integrations,
        meta,
        webhook_deliveries,
        webhooks,
    )
    from flows.dispatch import register_event_dispatch

    db.init_app(app)
    errors.init_app(app)
    register_event_dispatch()
    for module in (meta, integrations, exports, webhooks, webhook_deliveries, events):
        app.register_blueprint(module.bp)
    app.url_map.strict_slashes = False
    return app
