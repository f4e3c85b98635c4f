"""Public endpoints about the API itself: health, the OpenAPI document and its docs page.

``/docs`` is Swagger UI over ``/openapi.json``, served from files in ``api/static/`` (no CDN: the API is
often on a network without internet): Swagger UI's own, vendored from the ``swagger-ui-dist`` npm
package (``api/static/swagger-ui/README.md`` says which version and how to refresh it), and the page's
initializer, ``docs.js``. The page allows scripts and styles from this origin only (its
Content-Security-Policy), so it has no inline script. Its assets are named with a fingerprint of their
content (``?v=``), cached for a year under it, revalidated otherwise.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, current_app, json, request, send_file

from api.endpoint import endpoint
from api.errors import NotFound
from api.openapi import openapi_document

bp = Blueprint("meta", __name__)

STATIC = Path(__file__).resolve().parent.parent / "static"
# Every file /docs/assets/<name> serves; any other name is a 404 (a name is looked up here, never joined
# onto a directory).
DOCS_ASSETS = {
    "docs.js": STATIC / "docs.js",
    "docs.css": STATIC / "docs.css",
    "swagger-ui-bundle.js": STATIC / "swagger-ui" / "swagger-ui-bundle.js",
    "swagger-ui.css": STATIC / "swagger-ui" / "swagger-ui.css",
    "favicon-32x32.png": STATIC / "swagger-ui" / "favicon-32x32.png",
    "favicon-16x16.png": STATIC / "swagger-ui" / "favicon-16x16.png",
}
A_YEAR = 365 * 24 * 3600
# Swagger UI sets styles through the DOM (allowed), its icons are data: URIs in its CSS, and try-it-out
# calls this origin (the document's server is relative: "/").
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.get("/health")
@endpoint(public=True)
def health():
    """Liveness: the API process answers."""
    return Response(json.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API."""
    if "openapi_document" not in current_app.extensions:
        current_app.extensions["openapi_document"] = openapi_document(current_app)
    return Response(json.dumps(current_app.extensions["openapi_document"]), mimetype="application/json")


@cache
def _fingerprint(name: str) -> str:
    return hashlib.sha256(DOCS_ASSETS[name].read_bytes()).hexdigest()[:16]


@cache
def _docs_page() -> str:
    """The page, its links relative to /docs, so that it works on any host and port."""

    def url(name: str) -> str:
        return f"docs/assets/{name}?v={_fingerprint(name)}"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ModelPulse Integrations API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{url("swagger-ui.css")}"><link rel="stylesheet" href="{url("docs.css")}">
<link rel="icon" type="image/png" sizes="32x32" href="{url("favicon-32x32.png")}">
<link rel="icon" type="image/png" sizes="16x16" href="{url("favicon-16x16.png")}">
</head><body>
<div id="swagger-ui"><noscript><p>This page needs JavaScript. The API is described in
<a href="openapi.json">openapi.json</a> (OpenAPI 3.1).</p></noscript></div>
<script src="{url("swagger-ui-bundle.js")}" defer></script>
<script src="{url("docs.js")}" defer></script>
</body></html>
"""


@bp.get("/docs")
def docs():
    """Swagger UI over /openapi.json: every operation, Authorize (a bearer key) and try-it-out, and the
    webhooks' payloads."""
    response = Response(_docs_page(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control.no_cache = True
    return response


@bp.get("/docs/assets/<name>")
def docs_asset(name: str):
    """A file of the docs page: cached for a year under its fingerprint (``?v=``), revalidated otherwise."""
    if name not in DOCS_ASSETS:
        raise NotFound("No such file of the docs page.")
    fingerprinted = request.args.get("v") == _fingerprint(name)
    response = send_file(DOCS_ASSETS[name], max_age=A_YEAR if fingerprinted else None, conditional=True)
    if fingerprinted:
        response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
