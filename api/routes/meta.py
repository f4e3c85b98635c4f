"""Public endpoints about the API itself: health, the OpenAPI document and its docs page."""

from __future__ import annotations

import html

from flask import Blueprint, Response, current_app, json

from api.endpoint import endpoint
from api.openapi import openapi_document

bp = Blueprint("meta", __name__)


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


@bp.get("/docs")
def docs():
    """A self-contained reference page rendered from the OpenAPI document (no CDN needed)."""
    document = openapi_document(current_app)
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = ", ".join(operation["responses"])
            description = html.escape(operation.get("description", ""))
            rows.append(
                f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td><b>{html.escape(operation['summary'])}</b><br>{description}</td><td>{statuses}</td></tr>"
            )
    events = []
    for event_type, operations in document.get("webhooks", {}).items():
        operation = operations["post"]
        schema_name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        data_ref = document["components"]["schemas"][schema_name]["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        data = document["components"]["schemas"][data_ref]
        required = set(data.get("required", []))
        fields = ", ".join(
            f"<code>{html.escape(name)}</code>{'*' if name in required else ''}" for name in data.get("properties", {})
        )
        kinds = ", ".join(tag for tag in operation["tags"] if tag != "events")
        events.append(
            f"<tr><td><code>{html.escape(event_type)}</code></td><td><b>{html.escape(operation['summary'])}</b>"
            f"<br>{html.escape(operation['description'].split(chr(10))[0])}</td><td>{fields}</td>"
            f"<td>{html.escape(kinds)}</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset=utf-8><title>ModelPulse Integrations API</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}}.m{{font-weight:bold}}</style>
</head><body><h1>ModelPulse Integrations API</h1>
<p>Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>. Errors are
<code>application/problem+json</code>. Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
<table><tr><th>Method</th><th>Path</th><th>What it does</th><th>Statuses</th></tr>{"".join(rows)}</table>
<h2>Events sent to webhooks</h2>
<p>What a <code>standard</code> webhook receives: <code>{{"id", "type", "timestamp", "organization_id",
"project_id", "data"}}</code>, signed per Standard Webhooks (<code>webhook-id</code>, <code>webhook-timestamp</code>,
<code>webhook-signature</code>). <code>slack</code>, <code>teams</code> and <code>pagerduty</code> webhooks receive the
same events rendered for their service. Each payload's schema is in <a href="openapi.json">openapi.json</a> under
<code>webhooks</code>, and at <code>GET /organizations/{{organization_id}}/event-types</code>.
Fields marked * are always present.</p>
<table><tr><th>Type</th><th>What happened</th><th><code>data</code></th><th>Kind</th></tr>{"".join(events)}</table>
</body></html>"""
    return Response(page, mimetype="text/html")
