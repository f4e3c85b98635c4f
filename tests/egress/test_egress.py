"""The one egress policy, tried as a hostile tenant would: every outbound kind, every class of address.

Three layers are checked, each against the real thing:
- the policy itself, for every class of address (the guards below all ask it);
- the save-time check: creating or updating any record whose URL reaches a refused address is a 422
  naming the field, before anything connects (IP literals and names, no connection at all);
- the connect-time guard of every client library: a loopback server that records every request
  is reached when loopback is listed and never otherwise, including through a name that resolved to
  a public address when the record was saved (DNS rebinding).

No test here sends a packet anywhere but loopback: refused addresses are only ever resolved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from blocks.egress import EgressPolicy, GuardedTransport, UnsafeUrl, check_url
from store.settings import get_settings
from tests.fakes.server import FakeServer, Reply, Request
from tests.fakes.vertex_ai import new_service_account

# --- the policy -----------------------------------------------------------------------------------

CLASSES = {
    "loopback": "127.0.0.1",
    "RFC 1918": "10.1.2.3",
    "RFC 1918 (192.168)": "192.168.5.7",
    "CGNAT": "100.64.0.9",
    "link-local": "169.254.10.1",
    "metadata": "169.254.169.254",
    "IPv6 metadata": "fd00:ec2::254",
    "IPv6 link-local": "fe80::1",
    "IPv6 ULA": "fd12:3456::1",
    "IPv6 site-local": "fec0::1",
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "NAT64 private": "64:ff9b::a00:1",
    "local-use NAT64": "64:ff9b:1::a00:1",
    "6to4 loopback": "2002:7f00:1::1",
    "6to4 private": "2002:a01:203::1",
    "6to4 metadata": "2002:a9fe:a9fe::1",
}


def _ip(text: str) -> Any:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("address", sorted(CLASSES.values()))
def test_every_non_public_class_is_refused_by_default(address):
    assert EgressPolicy().refusal(_ip(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses_pass(address):
    assert EgressPolicy().refusal(_ip(address)) is None


@pytest.mark.parametrize(
    ("listed", "address"),
    [
        ("10.0.0.0/8", "10.1.2.3"),
        ("192.168.5.0/24", "192.168.5.7"),
        ("127.0.0.1/32", "127.0.0.1"),
        ("127.0.0.1/32", "::ffff:127.0.0.1"),
        ("10.0.0.0/8", "2002:a01:203::1"),
        ("fd12:3456::/32", "fd12:3456::1"),
        ("169.254.169.254/32", "169.254.169.254"),
        ("169.254.0.0/16", "169.254.10.1"),
        ("fe80::/10", "fe80::1"),
        ("fd00:ec2::254/128", "fd00:ec2::254"),
    ],
)
def test_a_listed_network_opens_its_addresses(listed, address):
    policy = EgressPolicy((ipaddress.ip_network(listed),))
    assert policy.refusal(_ip(address)) is None


def test_a_listed_network_opens_nothing_else():
    policy = EgressPolicy((ipaddress.ip_network("10.0.0.0/8"),))
    assert policy.refusal(_ip("192.168.5.7")) == "a private address"
    assert policy.refusal(_ip("127.0.0.1")) == "a loopback address"


@pytest.mark.parametrize("address", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "fd00:ec2::254"])
def test_link_local_and_metadata_need_their_own_network_not_a_broad_one(address):
    broad = EgressPolicy((ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")), allow_private=True)
    assert "open it by listing its own network" in broad.refusal(_ip(address))


def test_allow_private_opens_every_private_network_but_not_metadata():
    policy = EgressPolicy(allow_private=True)
    assert policy.refusal(_ip("10.1.2.3")) is None
    assert policy.refusal(_ip("127.0.0.1")) is None
    assert policy.refusal(_ip("169.254.169.254")) is not None
    assert policy.refusal(_ip("0.0.0.0")) == "a unspecified address"


def test_the_setting_is_a_comma_separated_list_of_cidrs(monkeypatch):
    monkeypatch.setenv("MODELPULSE_ALLOWED_PRIVATE_NETWORKS", "10.0.0.0/8, 192.168.5.0/24,127.0.0.1/32")
    get_settings.cache_clear()
    try:
        assert [str(n) for n in get_settings().allowed_private_networks] == [
            "10.0.0.0/8",
            "192.168.5.0/24",
            "127.0.0.1/32",
        ]
        monkeypatch.setenv("MODELPULSE_ALLOWED_PRIVATE_NETWORKS", "10.0.0.1/8")  # host bits: a typo
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="allowed_private_networks"):
            get_settings()
    finally:
        get_settings.cache_clear()


# --- shared fixtures ------------------------------------------------------------------------------


@pytest.fixture
def database_url(sqlite_url) -> str:
    """The egress rules do not depend on the database: SQLite only."""
    return sqlite_url


@pytest.fixture
def deny(monkeypatch) -> Callable[[], None]:
    """``deny()``: the production default from here on (nothing private listed)."""

    def _deny() -> None:
        monkeypatch.setenv("MODELPULSE_ALLOWED_PRIVATE_NETWORKS", "")
        monkeypatch.setenv("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "false")
        get_settings.cache_clear()

    yield _deny
    get_settings.cache_clear()


class Recorder(FakeServer):
    """A loopback server that answers every request ``200 {}`` and records it."""

    def route(self, request: Request) -> Reply:
        return Reply(200, {})


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


NAMES = {"rebind.test": "93.184.215.14", "internal.test": "10.1.2.3", "oauth2.test": "93.184.215.14"}


@pytest.fixture
def resolver(monkeypatch) -> dict[str, str]:
    """Test names resolve to what the returned dict says at the moment of each lookup."""
    answers = dict(NAMES)
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            address = answers[host]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


# --- the save-time check: every kind, every class, a 422 naming the field -------------------------

SAVE_TARGETS = {
    "127.0.0.1": "loopback",
    "10.1.2.3": "private",
    "169.254.169.254": "link-local",
    "[fd00:ec2::254]": "cloud metadata",
    "[::ffff:127.0.0.1]": "loopback",
    "[2002:a01:203::1]": "private",
    "internal.test": "private",  # a name resolving to a private address
}


def _service_account(token_uri: str = "https://oauth2.test/token") -> dict[str, Any]:
    return new_service_account(token_uri)[0]


def _records(host: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(collection, field, body) of each outbound kind with ``host`` in its user-set URL."""
    url = f"http://{host}:9200"
    export = {"name": "e", "streams": ["inference_logs"]}
    integration = {"name": "i"}
    return [
        (
            "exports",
            "config.url",
            export
            | {"type": "elasticsearch", "config": {"url": url}, "credentials": {"username": "u", "password": "p"}},
        ),
        (
            "exports",
            "config.hec_url",
            export | {"type": "splunk", "config": {"hec_url": url}, "credentials": {"hec_token": "t" * 16}},
        ),
        (
            "exports",
            "config.api_url",
            export | {"type": "datadog", "config": {"api_url": url}, "credentials": {"api_key": "a", "app_key": "b"}},
        ),
        ("integrations", "config.tracking_uri", integration | {"type": "mlflow", "config": {"tracking_uri": url}}),
        (
            "integrations",
            "config.endpoint_url",
            integration
            | {
                "type": "sagemaker",
                "config": {"region_name": "us-east-1", "endpoint_url": url},
                "credentials": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s" * 20},
            },
        ),
        (
            "integrations",
            "config.api_endpoint",
            integration
            | {
                "type": "vertex_ai",
                "config": {"project_id": "p", "location": "us-central1", "api_endpoint": url},
                "credentials": {"service_account_info": _service_account()},
            },
        ),
        (
            "integrations",
            "credentials.service_account_info",
            integration
            | {
                "type": "vertex_ai",
                "config": {"project_id": "p", "location": "us-central1"},
                "credentials": {"service_account_info": _service_account(f"{url}/token")},
            },
        ),
        ("webhooks", "url", {"name": "w", "url": f"{url}/hook", "events": ["drift.detected"]}),
    ]


@pytest.mark.parametrize(("host", "reason"), sorted(SAVE_TARGETS.items()))
def test_every_outbound_kind_refuses_every_class_when_saved(client, org, deny, resolver, host, reason):
    deny()
    for collection, field, body in _records(host):
        response = client.post(f"/organizations/{org.id}/{collection}", json=body, headers=org.headers)
        assert response.status_code == 422, (field, response.get_json())
        errors = response.get_json()["errors"]
        assert [e["field"] for e in errors] == [field], errors
        if not (field == "config.api_endpoint" and host.startswith("[")):  # a host name or IPv4 only
            assert reason in errors[0]["message"], errors


def test_a_put_to_a_refused_target_is_a_422_naming_the_field(client, org, deny, recorder):
    body = {"name": "e", "type": "elasticsearch", "streams": ["inference_logs"]}
    body["config"] = {"url": recorder.url, "manage_templates": False}
    body["credentials"] = {"username": "elastic", "password": "pw"}
    created = client.post(f"/organizations/{org.id}/exports", json=body, headers=org.headers)
    assert created.status_code == 201, created.get_json()
    deny()
    body["config"] = {"url": "http://169.254.169.254/", "manage_templates": False}
    path = f"/organizations/{org.id}/exports/{created.get_json()['id']}"
    response = client.put(path, json=body, headers=org.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "config.url"
    assert client.get(path, headers=org.headers).get_json()["config"]["url"] == recorder.url


def test_listed_networks_are_accepted_when_saved(client, org, recorder):
    """The test environment lists 127.0.0.0/8 (tests/conftest.py): the loopback fake is accepted."""
    body = {"name": "i", "type": "mlflow", "config": {"tracking_uri": recorder.url}}
    assert client.post(f"/organizations/{org.id}/integrations", json=body, headers=org.headers).status_code == 201


def test_check_url_accepts_a_name_that_does_not_resolve():
    check_url("https://nothing.invalid/hook", EgressPolicy())
    with pytest.raises(UnsafeUrl, match="http or https"):
        check_url("file:///etc/passwd", EgressPolicy())


# --- the connect-time guard of every client library -----------------------------------------------


def _elasticsearch(url: str) -> None:
    from blocks.elasticsearch import ElasticsearchConnection

    ElasticsearchConnection(url=url).get_client(request_timeout=5, max_retries=0).info()


def _splunk(url: str) -> None:
    from blocks.splunk import SplunkHecConnection

    SplunkHecConnection(hec_url=url, hec_token="t" * 16).get_client(timeout=5).post(
        "/services/collector/event", content=b"{}"
    ).raise_for_status()


def _datadog(url: str) -> None:
    from datadog_api_client.v1.api.authentication_api import AuthenticationApi

    from blocks.datadog import DatadogConnection

    AuthenticationApi(DatadogConnection(api_key="a", app_key="b", api_url=url).get_client(timeout=5)).validate()


def _sagemaker(url: str) -> None:
    from blocks.aws import aws_credentials_from_settings, sagemaker_client

    block = aws_credentials_from_settings(
        {"region_name": "us-east-1", "endpoint_url": url},
        {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s" * 20},
    )
    sagemaker_client(block).list_model_package_groups()


def _mlflow(url: str) -> None:
    from blocks.mlflow import MlflowConnection

    MlflowConnection(tracking_uri=url, token="t0ken").get_client().search_registered_models()


def _vertex_ai(url: str) -> None:
    """The first request of a Vertex AI call is the token request to the key's ``token_uri``."""
    from blocks.gcp import gcp_credentials_from_settings, vertex_model_client

    block = gcp_credentials_from_settings(
        {"project_id": "p"}, {"service_account_info": _service_account(url + "/token")}
    )
    vertex_model_client(block, "us-central1", url).list_models(parent="projects/p/locations/us-central1")


def _webhook(url: str) -> None:
    async def post() -> None:
        async with httpx.AsyncClient(transport=GuardedTransport(), trust_env=False) as client:
            await client.post(url + "/hook", content=b"{}")

    asyncio.run(post())


CLIENTS = {
    "elasticsearch": _elasticsearch,
    "splunk": _splunk,
    "datadog": _datadog,
    "sagemaker": _sagemaker,
    "mlflow": _mlflow,
    "vertex_ai": _vertex_ai,
    "webhook": _webhook,
}


def _attempt(send: Callable[[str], None], url: str) -> str:
    """Send, and return what went wrong in words ('' when nothing did)."""
    try:
        send(url)
    except Exception as error:  # noqa: BLE001 - each library raises its own kind
        chain, cause = [], error
        while cause is not None and len(chain) < 10:
            chain.append(f"{type(cause).__name__}: {cause}")
            cause = cause.__cause__ or cause.__context__
        return " <- ".join(chain)
    return ""


@pytest.mark.parametrize("kind", sorted(CLIENTS))
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_every_client_is_refused_at_connect_time_unless_listed(kind, host, deny, recorder, monkeypatch):
    """Refused first, then listed: a refused attempt leaves no pooled connection a later one could reuse,
    and the client (cached per block content) follows the policy in force at each connection."""
    url = recorder.url.replace("127.0.0.1", host)
    deny()
    error = _attempt(CLIENTS[kind], url)
    assert "loopback address" in error, error
    assert recorder.requests == [], f"{kind} reached a refused address"

    monkeypatch.setenv("MODELPULSE_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")
    get_settings.cache_clear()
    _attempt(CLIENTS[kind], url)
    assert recorder.requests, f"{kind}: the listed loopback network must be reachable"


@pytest.mark.parametrize("kind", ["elasticsearch", "mlflow"])
def test_a_rebinding_name_is_refused_at_connect_time_through_the_api(kind, client, org, deny, resolver, recorder):
    """Public when saved, loopback when used: the record saves, and its /test never reaches loopback."""
    deny()
    port = recorder.url.rsplit(":", 1)[1]
    url = f"http://rebind.test:{port}"
    if kind == "elasticsearch":
        collection = "exports"
        body = {"name": "e", "type": "elasticsearch", "streams": ["inference_logs"]}
        body["config"] = {"url": url, "manage_templates": False}
        body["credentials"] = {"username": "elastic", "password": "pw"}
    else:
        collection = "integrations"
        body = {"name": "i", "type": "mlflow", "config": {"tracking_uri": url}, "credentials": {"token": "t0ken"}}
    created = client.post(f"/organizations/{org.id}/{collection}", json=body, headers=org.headers)
    assert created.status_code == 201, created.get_json()
    assert recorder.requests == []

    resolver["rebind.test"] = "127.0.0.1"
    path = f"/organizations/{org.id}/{collection}/{created.get_json()['id']}/test"
    answer = client.post(path, headers=org.headers)
    assert answer.status_code in (200, 502), answer.get_json()  # /test reports, or the registry is a bad gateway
    assert "loopback address" in str(answer.get_json()), answer.get_json()
    assert recorder.requests == [], "the rebinding name reached loopback"


# --- cookies on the clients tenants share ----------------------------------------------------------


class CookieSetter(FakeServer):
    """A receiver that sets a cookie on every answer, naming the request's ``Authorization`` (the tenant)."""

    def route(self, request: Request) -> Reply:
        tenant = request.header("authorization") or request.path.rsplit("/", 1)[-1]
        return Reply(200, {}, headers={"Set-Cookie": f"session={tenant.replace(' ', '-')}; Path=/"})


def _webhook_sender(url: str, tenants: list[str]) -> None:
    """Each tenant's webhook at the same origin, sent as the dispatcher sends: one ``Sender``, its pool
    for the origin, ``send_attempt``."""
    from tasks.webhooks.delivery import Target, send_attempt
    from tasks.webhooks.sender import Sender
    from tasks.webhooks.settings import get_webhook_settings

    async def send() -> None:
        async with Sender(get_webhook_settings()) as sender:
            for tenant in tenants:
                target = Target(
                    delivery_id=f"dlv_{tenant}", webhook_id=f"wh_{tenant}", url=f"{url}/hooks/{tenant}",
                    message_id="evt_1", body=b"{}", secrets=["whsec_" + "c2VjcmV0" * 4], organization_id=tenant,
                )  # fmt: skip
                async with sender.pool_for(target.url) as pool:
                    result = await send_attempt(pool.transport, target, "initial", 5, "ModelPulse")
                assert result.outcome == "succeeded", result

    asyncio.run(send())


def _mlflow_tenants(url: str, tenants: list[str]) -> None:
    """Each tenant's MLflow integration at the same tracking server, in one process (the API's)."""
    from blocks.mlflow import MlflowConnection

    for tenant in tenants:
        MlflowConnection(tracking_uri=url, token=tenant).get_client().search_registered_models()


@pytest.mark.parametrize("send", [_webhook_sender, _mlflow_tenants], ids=["webhooks", "mlflow"])
def test_no_cookie_one_tenant_was_given_rides_on_another_tenants_request(send, monkeypatch):
    """The receiver sets a cookie on each answer; no later request, the same tenant's or another's, carries
    one back."""
    monkeypatch.setenv("MODELPULSE_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")
    get_settings.cache_clear()
    with CookieSetter() as server:
        send(server.url, ["tenant-a", "tenant-b", "tenant-a"])
    assert len(server.requests) == 3
    assert [request.header("cookie") for request in server.requests] == [None, None, None]
