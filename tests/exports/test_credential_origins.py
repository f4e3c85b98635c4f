"""A PUT that moves an export to another origin must send every stored secret again; until it does,
nothing is sent to the new origin (a loopback server there records every request)."""

from __future__ import annotations

import base64

import pytest

from tests.fakes.canned import CannedServer
from tests.fakes.datadog import DatadogFake
from tests.fakes.elasticsearch import ElasticsearchFake
from tests.fakes.splunk import SplunkHecFake

MASK = "********"
OLD_SECRETS = {"es-secret-pw-7f3a", "hec-secret-token-91bd", "dd-secret-api-key-c0ffee", "dd-old-app-key"}


def base(org_id: str) -> str:
    return f"/organizations/{org_id}/exports"


def _es(url: str) -> dict:
    return {"type": "elasticsearch", "config": {"url": url, "manage_templates": True}}


def _splunk(url: str) -> dict:
    return {"type": "splunk", "config": {"hec_url": url}}


def _datadog(url: str) -> dict:
    return {"type": "datadog", "config": {"api_url": url}}


# type -> (the export's config at an origin, its old credentials, the fields a move must re-send)
CASES = {
    "elasticsearch": (_es, {"username": "elastic", "password": "es-secret-pw-7f3a"}, ["password", "username"]),
    "splunk": (_splunk, {"hec_token": "hec-secret-token-91bd"}, ["hec_token"]),
    "datadog": (_datadog, {"api_key": "dd-secret-api-key-c0ffee", "app_key": "dd-old-app-key"}, ["api_key", "app_key"]),
}


@pytest.fixture
def old_origin(es, hec, datadog):
    return {"elasticsearch": es, "splunk": hec, "datadog": datadog}


def _create(api, org_id: str, type_: str, url: str) -> str:
    make, credentials, _ = CASES[type_]
    response = api.post(base(org_id), json={"name": f"{type_}-export", **make(url), "credentials": credentials})
    assert response.status_code == 201, response.json
    return f"{base(org_id)}/{response.json['id']}"


def _secrets_in(request) -> set[str]:
    """Every old secret that appears in a request's headers (basic auth decoded)."""
    text = " ".join(request.headers.values())
    authorization = request.header("authorization") or ""
    if authorization.startswith("Basic "):
        text += " " + base64.b64decode(authorization.removeprefix("Basic ")).decode()
    return {secret for secret in OLD_SECRETS if secret in text}


@pytest.mark.parametrize("type_", list(CASES))
@pytest.mark.parametrize("sent", ["omitted", "masked"])
def test_a_move_without_every_secret_is_422_and_the_new_origin_hears_nothing(api, org_id, old_origin, type_, sent):
    make, credentials, fields = CASES[type_]
    url = _create(api, org_id, type_, old_origin[type_].url)
    with CannedServer() as new_origin:
        body = {"name": f"{type_}-export", **make(new_origin.url)}
        if sent == "masked":
            body["credentials"] = {name: MASK for name in credentials}

        response = api.put(url, json=body)
        after = api.post(f"{url}/test")

    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json["errors"]] == [f"credentials.{name}" for name in fields]
    assert new_origin.requests == [], "nothing may reach the new origin"
    assert make(old_origin[type_].url)["config"].items() <= api.get(url).json["config"].items()
    assert after.json["ok"] is True, "the export still works where it was"


def test_one_secret_resent_still_names_the_other(api, org_id, es):
    url = _create(api, org_id, "elasticsearch", es.url)
    with CannedServer() as new_origin:
        response = api.put(url, json={"name": "moved", **_es(new_origin.url), "credentials": {"username": "elastic"}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["credentials.password"]
    assert new_origin.requests == []


NEW = {
    "elasticsearch": (lambda: ElasticsearchFake(username="elastic2", password="es-new-pw"),
                      {"username": "elastic2", "password": "es-new-pw"}),
    "splunk": (lambda: SplunkHecFake(token="hec-new-token"), {"hec_token": "hec-new-token"}),
    "datadog": (lambda: DatadogFake(api_key="dd-new-api-key"), {"api_key": "dd-new-api-key", "app_key": "dd-new-app"}),
}  # fmt: skip


@pytest.mark.parametrize("type_", list(CASES))
def test_a_move_with_every_secret_resent_uses_the_new_ones(api, org_id, old_origin, type_):
    make, _, _ = CASES[type_]
    start, credentials = NEW[type_]
    url = _create(api, org_id, type_, old_origin[type_].url)
    with start() as new_origin:
        response = api.put(url, json={"name": "moved", **make(new_origin.url), "credentials": credentials})
        tested = api.post(f"{url}/test").json

    assert response.status_code == 200, response.json
    assert response.json["credentials"] == {name: MASK for name in credentials}
    assert tested["ok"] is True, tested
    assert new_origin.requests and not any(_secrets_in(r) for r in new_origin.requests)


@pytest.mark.parametrize("type_", list(CASES))
@pytest.mark.parametrize("sent", ["omitted", "masked"])
def test_the_same_origin_keeps_omitted_and_masked_secrets(api, org_id, old_origin, type_, sent):
    make, credentials, _ = CASES[type_]
    fake = old_origin[type_]
    url = _create(api, org_id, type_, fake.url)
    body = {"name": "renamed", **make(fake.url + "/")}  # the same origin, written differently
    if sent == "masked":
        body["credentials"] = {name: MASK for name in credentials}

    response = api.put(url, json=body)

    assert response.status_code == 200, response.json
    assert response.json["credentials"] == {name: MASK for name in credentials}
    assert api.post(f"{url}/test").json["ok"] is True


def test_no_request_reaches_a_new_origin_with_an_old_secret(api, org_id, es):
    """A real loopback server as the new origin records every request's headers: the refused moves
    send it nothing; the accepted one (template install on PUT, then /test) only the new secret."""
    url = _create(api, org_id, "elasticsearch", es.url)
    with CannedServer(200, {"version": {"number": "8.15.0"}}) as new_origin:
        new_origin.default_headers = {"X-Elastic-Product": "Elasticsearch"}
        refused = [
            api.put(url, json={"name": "moved", **_es(new_origin.url)}),
            api.put(url, json={"name": "moved", **_es(new_origin.url), "credentials": {"username": MASK}}),
            api.put(url, json={"name": "moved", **_es(new_origin.url.replace("127.0.0.1", "localhost"))}),
        ]
        assert [r.status_code for r in refused] == [422, 422, 422]
        assert new_origin.requests == []

        accepted = api.put(
            url, json={"name": "moved", **_es(new_origin.url), "credentials": {"username": "u2", "password": "p2"}}
        )
        api.post(f"{url}/test")

    assert accepted.status_code == 200, accepted.json
    assert new_origin.requests, "the accepted move reaches the new origin"
    for request in new_origin.requests:
        assert _secrets_in(request) == set()
        assert request.header("authorization") == "Basic " + base64.b64encode(b"u2:p2").decode()


def test_moving_a_datadog_export_to_another_site_needs_the_keys(api, org_id):
    created = api.post(
        base(org_id),
        json={"name": "dd", "type": "datadog", "config": {"site": "datadoghq.eu"},
              "credentials": {"api_key": "dd-secret-api-key-c0ffee", "app_key": "dd-old-app-key"}},
    )  # fmt: skip
    url = f"{base(org_id)}/{created.json['id']}"
    moved = api.put(url, json={"name": "dd", "type": "datadog", "config": {"site": "us5.datadoghq.com"}})
    kept = api.put(url, json={"name": "dd2", "type": "datadog", "config": {"site": "datadoghq.eu"}})
    assert moved.status_code == 422
    assert [e["field"] for e in moved.json["errors"]] == ["credentials.api_key", "credentials.app_key"]
    assert kept.status_code == 200
