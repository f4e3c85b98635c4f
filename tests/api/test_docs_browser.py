"""/docs in a real browser: Debian's chromium, headless, driven by Playwright, against the API served by
gunicorn (``served``, tests/api/conftest.py).

Every operation and every webhook of /openapi.json is rendered; Authorize takes a key, and try-it-out
sends it as ``Authorization: Bearer <key>`` to the server that served the page and shows the answer;
nothing the page does breaks its Content-Security-Policy. Playwright drives the installed chromium
(``executable_path``), never a browser of its own: .ci/run installs the package where it is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.api.bodies import body

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`, which .ci/run installs)"
)

WAIT_MS = 60_000  # the machine is shared: the page's 1.7 MB script and first render may take a while
# Every Content-Security-Policy violation on the page, from the moment it starts loading.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def chromium_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.add_init_script(RECORD_VIOLATIONS)
            yield page
        finally:
            browser.close()


def test_docs_render_every_operation_and_try_it_out_sends_the_key(served, chromium_page):
    page = chromium_page
    webhook = httpx.post(
        f"{served.url}/organizations/acme/webhooks",
        json=body("webhooks", name="seen-on-docs"),
        headers=served.headers,
        timeout=60,
    )
    assert webhook.status_code == 201, webhook.text
    document = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    # Swagger UI's block of an operation is #operations-<first tag>-<operationId>.
    expected = {
        f"operations-{operation['tags'][0]}-{operation['operationId']}"
        for operations in document["paths"].values()
        for operation in operations.values()
    }
    assert len(expected) >= 50

    response = page.goto(f"{served.url}/docs")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    operations = page.locator(".opblock-tag-section .opblock")
    expect(operations).to_have_count(len(expected), timeout=WAIT_MS)
    assert {operations.nth(i).get_attribute("id") for i in range(len(expected))} == expected
    # The webhooks section (OpenAPI 3.1): one block per event type.
    webhooks = page.locator(".webhooks .opblock")
    expect(webhooks).to_have_count(len(document["webhooks"]), timeout=WAIT_MS)
    rendered = " ".join(webhooks.locator(".opblock-summary-path").all_inner_texts())
    assert all(event_type in rendered for event_type in document["webhooks"]), rendered
    # The introduction (info.description) is rendered as Markdown.
    expect(page.locator(".info .description")).to_contain_text("Events sent to webhooks")

    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_contain_text("bearerAuth")
    dialog.locator("input#auth-bearer-value").fill(served.key)
    dialog.get_by_role("button", name="Apply credentials").click()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_have_text("Logout")  # authorized
    dialog.get_by_role("button", name="Close").click()

    operation = page.locator("#operations-webhooks-webhooks_list_webhooks")
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator('tr[data-param-name="organization_id"] input').fill("acme")
    with page.expect_response(lambda r: "/organizations/acme/webhooks" in r.url) as answer:
        operation.get_by_role("button", name="Execute").click()
    request = answer.value.request
    assert request.url.startswith(f"{served.url}/organizations/acme/webhooks")  # the server of the page
    assert request.header_value("authorization") == f"Bearer {served.key}"
    result = operation.locator(".live-responses-table .response")
    expect(result.locator(".response-col_status")).to_have_text("200", timeout=WAIT_MS)
    shown = result.locator(".response-col_description .highlight-code pre").first
    expect(shown).to_contain_text('"items"')
    expect(shown).to_contain_text('"seen-on-docs"')

    # Nothing above broke the page's policy, and the recorder does see a breach (an image from elsewhere).
    assert page.evaluate("window.cspViolations") == []
    page.evaluate("document.body.appendChild(new Image()).src = 'http://192.0.2.1/probe.png'")
    page.wait_for_function("window.cspViolations.length > 0")
    assert page.evaluate("window.cspViolations") == ["img-src http://192.0.2.1/probe.png"]
