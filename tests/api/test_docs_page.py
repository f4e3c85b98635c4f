"""/docs in process: the Swagger UI page and its files, served from the package (no CDN), public, cached
under a fingerprint, nothing served but the files named in ``DOCS_ASSETS``. What the page shows in a
browser is tests/api/test_docs_browser.py's."""

from __future__ import annotations

import re

import pytest

from api import create_app
from api.routes.meta import DOCS_ASSETS


@pytest.fixture
def docs_client(sqlite_url):
    return create_app({"TESTING": True, "DATABASE_URL": sqlite_url}).test_client()


def test_the_page_loads_swagger_ui_and_its_initializer_from_this_server_only(docs_client):
    page = docs_client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert links and all(link.startswith("docs/assets/") or link == "openapi.json" for link in links), links
    scripts = re.findall(r'<script src="docs/assets/([^"?]+)\?v=[0-9a-f]{16}" defer></script>', html)
    assert scripts == ["swagger-ui-bundle.js", "docs.js"] and html.count("<script") == 2  # none inline
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    assert page.headers["Cache-Control"] == "no-cache"
    # Every file the page names is served, cached for a year under its fingerprint.
    for link in links:
        if link == "openapi.json":
            continue
        asset = docs_client.get("/" + link)
        assert asset.status_code == 200, link
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable", link
        assert asset.headers["X-Content-Type-Options"] == "nosniff"


def test_the_vendored_swagger_ui_renders_openapi_3_1():
    bundle = DOCS_ASSETS["swagger-ui-bundle.js"].read_text()
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version and int(version.group(1)) >= 5  # Swagger UI 5 renders OpenAPI 3.1 (and its webhooks)
    readme = (DOCS_ASSETS["swagger-ui-bundle.js"].parent / "README.md").read_text()
    assert f"swagger-ui-dist@{'.'.join(version.groups())}" in readme  # the README names what is vendored


def test_an_asset_without_its_fingerprint_is_revalidated(docs_client):
    first = docs_client.get("/docs/assets/docs.js")
    assert first.status_code == 200 and first.mimetype in ("text/javascript", "application/javascript")
    assert first.headers["Cache-Control"] == "no-cache" and first.headers["ETag"]
    again = docs_client.get("/docs/assets/docs.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    stale = docs_client.get("/docs/assets/docs.js?v=0000000000000000")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/",
        "/docs/assets/README.md",
        "/docs/assets/LICENSE",
        "/docs/assets/..",
        "/docs/assets/%2e%2e",
        "/docs/assets/..%2fdocs.js",
        "/docs/assets/..%2f..%2froutes%2fmeta.py",
        "/docs/assets/swagger-ui%2fLICENSE",
        "/docs/assets/../../api/routes/meta.py",
        "/docs/assets/%2fetc%2fpasswd",
        "/docs/assets/docs.js%00",
    ],
)
def test_nothing_but_the_named_files_is_served(docs_client, path):
    response = docs_client.get(path)
    assert response.status_code == 404 and response.mimetype == "application/problem+json", path


def test_the_docs_need_no_key(docs_client):
    for path in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/openapi.json"):
        assert docs_client.get(path).status_code == 200, path
