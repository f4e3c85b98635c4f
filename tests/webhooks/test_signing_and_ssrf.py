"""Signatures against the Standard Webhooks reference library; the SSRF rules, address by address."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from blocks.egress import (
    EgressPolicy,
    GuardedTransport,
    TargetRefused,
    UnsafeUrl,
    check_url,
    refusal_reason,
)
from blocks.webhook import new_signing_secret
from tasks.webhooks.delivery import Target, build_headers
from tasks.webhooks.signing import signature_header
from tests.webhooks.receivers import Receiver


def test_signature_verifies_with_the_reference_library_for_each_active_secret():
    new, old, stranger = new_signing_secret(), new_signing_secret(), new_signing_secret()
    body = json.dumps({"id": "evt_1", "type": "drift.detected"}).encode()
    target = Target("dlv_1", "wh_1", "http://x", "evt_1", body, secrets=[new, old])
    headers = build_headers(target, int(__import__("time").time()), "ModelPulse-Webhooks/1.0")

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert StandardWebhook(new).verify(body, headers)["type"] == "drift.detected"
    assert StandardWebhook(old).verify(body, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(stranger).verify(body, headers)


def test_signature_is_the_documented_hmac():
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
    expected = StandardWebhook(secret).sign("evt_1", __import__("datetime").datetime.fromtimestamp(1700000000), "{}")
    assert signature_header([secret], "evt_1", 1700000000, b"{}") == expected


def test_custom_headers_cannot_replace_signature_content_type_or_user_agent():
    secret = new_signing_secret()
    custom = {
        "Content-Type": "text/plain",
        "User-Agent": "evil",
        "Webhook-Signature": "v1,forged",
        "Authorization": "Bearer t0ken",
    }
    target = Target("dlv_1", "wh_1", "http://x", "evt_1", b"{}", secrets=[secret], headers=custom)
    headers = build_headers(target, 1700000000, "ModelPulse-Webhooks/1.0")
    lowered = {name.lower(): value for name, value in headers.items()}

    assert lowered["content-type"] == "application/json"
    assert lowered["user-agent"] == "ModelPulse-Webhooks/1.0"
    assert lowered["webhook-signature"] != "v1,forged"
    assert lowered["authorization"] == "Bearer t0ken"
    assert len([name for name in headers if name.lower() == "content-type"]) == 1


REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "224.0.0.251": "multicast",
    "240.0.0.1": "reserved",
    "0.0.0.0": "unspecified",
    "::1": "loopback",
    "::": "unspecified",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fe80::1": "link-local",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "64:ff9b::a00:1": "private",
}


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_non_public_addresses_are_refused(address, reason):
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://203.0.113.1/hook", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://localhost:9000/hook", "loopback"),
    ],
)
def test_check_url_refuses_with_a_reason(url, why):
    with pytest.raises(UnsafeUrl, match=why):
        check_url(url, EgressPolicy())


def test_allow_setting_lifts_the_address_check_but_not_the_scheme():
    check_url("http://localhost:9000/hook", EgressPolicy(allow_private=True))
    with pytest.raises(UnsafeUrl):
        check_url("gopher://localhost/", EgressPolicy(allow_private=True))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivery_connection_to_loopback_is_refused_at_connect_time(host):
    """The guard judges the address it connects to, so a saved URL cannot reach loopback later."""
    with Receiver() as receiver:
        port = receiver.server.server_address[1]

        async def post() -> None:
            async with httpx.AsyncClient(transport=GuardedTransport(EgressPolicy())) as client:
                await client.post(f"http://{host}:{port}/hook", content=b"{}")

        with pytest.raises(httpx.ConnectError) as caught:
            asyncio.run(post())
    assert isinstance(caught.value.__cause__, TargetRefused)
    assert "loopback" in str(caught.value)
    assert receiver.received == []


def test_guarded_transport_connects_when_allowed():
    with Receiver() as receiver:

        async def post() -> int:
            async with httpx.AsyncClient(transport=GuardedTransport(EgressPolicy(allow_private=True))) as client:
                return (await client.post(receiver.url, content=b"{}")).status_code

        assert asyncio.run(post()) == 200
    assert len(receiver.received) == 1
