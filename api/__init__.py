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
from werkzeug.middleware.proxy_fix import ProxyFix

from api.standard_json import StandardJSONProvider
from store.settings import get_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = get_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        DATABASE_URL=settings.resolved_database_url,
        PUBLIC_URL=settings.public_url,
        RATE_LIMIT_PER_MINUTE=settings.rate_limit_per_minute,
        AUTH_FAILURES_PER_MINUTE=settings.auth_failures_per_minute,
        TRUSTED_PROXIES=settings.trusted_proxies,
        JSON_SORT_KEYS=False,
        MAX_BODY_BYTES=settings.max_body_bytes,
        MAX_INFERENCE_LOG_BODY_BYTES=settings.max_inference_log_body_bytes,
    )
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["TRUSTED_PROXIES"]:
        # Only the proxies' own entries are trusted: a client cannot choose its address by sending the header.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])  # type: ignore[method-assign]
    app.json = StandardJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from api import auth, db, endpoint, errors, rate_limits
    from api.routes import (
        drift,
        events,
        export_runs,
        exports,
        inbound,
        inference_logs,
        integrations,
        meta,
        metrics,
        monitors,
        recommendations,
        registries,
        remediations,
        silences,
        thresholds,
        webhook_deliveries,
        webhooks,
    )

    db.init_app(app)
    errors.init_app(app)
    endpoint.init_app(app)  # an oversized body is refused before anything else looks at the request
    auth.init_app(app)
    rate_limits.init_app(app)
    for module in (
        meta, metrics, integrations, registries, inbound, exports, export_runs, webhooks, webhook_deliveries,
        silences, events,
    ):
        app.register_blueprint(module.bp)
    for blueprint in (
        events.catalog_bp,
        inference_logs.bp,
        drift.checks_bp,
        drift.metrics_bp,
        monitors.bp,
        thresholds.bp,
        recommendations.bp,
        remediations.bp,
    ):
        app.register_blueprint(blueprint)
    app.url_map.strict_slashes = False
    return app
