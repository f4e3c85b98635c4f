"""Keep webhook deliveries away from internal networks (server-side request forgery).

Two checks, one rule (``refusal_reason``): a webhook URL is checked when it is saved
(``check_webhook_url``, for a clear 422), and every connection a delivery opens is checked against
the address it actually connects to (``GuardedTransport``), so a name that resolves to a public
address at save time and to ``127.0.0.1`` later (DNS rebinding) still cannot get through.

Exceptions::

    UnsafeWebhookUrl (ValueError)     the URL is refused when saved
    TargetRefused (httpcore.ConnectError)
                                      a delivery's connection is refused; httpx raises it as
                                      httpx.ConnectError with this exception as ``__cause__``
    HostNotResolved (httpcore.ConnectError)
                                      the delivery's host name does not resolve (raised the same way)
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import typing
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeWebhookUrl(ValueError):
    """A webhook URL that deliveries may not be sent to; the message says why."""


class TargetRefused(httpcore.ConnectError):
    """A delivery connection refused because of the address it would reach."""


class HostNotResolved(httpcore.ConnectError):
    """A delivery's host name does not resolve; ``host`` is the name."""

    def __init__(self, host: str) -> None:
        super().__init__(f"could not resolve host {host}")
        self.host = host


def refusal_reason(address: IPAddress) -> str | None:
    """Why a delivery may not connect to ``address``, or ``None`` when it is a public address.

    IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::7f00:1``) are judged as
    the IPv4 address they carry.

    Example:
        >>> refusal_reason(ipaddress.ip_address("169.254.169.254"))
        'link-local'
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal_reason(address.ipv4_mapped)
        if address in _NAT64:
            return refusal_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT"
    if address.is_reserved:  # before "private": Python counts 240.0.0.0/4 as both
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def check_webhook_url(url: str, allow_private: bool = False) -> None:
    """Refuse a webhook URL that is not http(s) or whose host resolves to a non-public address.

    A host that does not resolve at all is accepted: it reaches nothing, and every delivery
    checks the address it connects to anyway.

    Raises:
        UnsafeWebhookUrl: with a message meant for the API user.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("the URL must use http or https")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrl("the URL has no host")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookUrl("the URL has an invalid port") from exc
    for address in _resolve(host, port):
        reason = refusal_reason(address)
        if reason:
            raise UnsafeWebhookUrl(f"the host {host} resolves to {address}, a {reason} address")


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        # A name that does not resolve yet reaches nothing; each delivery checks it again.
        return []
    return [_ip(str(info[4][0])) for info in infos]


def _ip(text: str) -> IPAddress:
    # getaddrinfo may append a zone to IPv6 link-local addresses ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


async def _lookup(host: str, port: int, timeout: float | None) -> list[typing.Any]:
    """``getaddrinfo`` for a delivery, its failures raised as the connect errors httpx maps."""
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotResolved(host) from error
    except TimeoutError as error:
        raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:g} s") from error
    if not infos:
        raise HostNotResolved(host)
    return list(infos)


class GuardedNetworkBackend(AsyncNetworkBackend):
    """Resolves the host itself, connects only to a permitted address, and checks the peer."""

    def __init__(self, allow_private: bool = False) -> None:
        self._allow_private = allow_private
        self._inner = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        infos = await _lookup(host, port, timeout)
        refusals = []
        failure: Exception | None = None
        for info in infos:
            address = _ip(str(info[4][0]))
            reason = refusal_reason(address)
            if reason:
                refusals.append(f"{address} is a {reason} address")
                continue
            # Connect to the checked address, not the name: a second lookup could answer differently.
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error  # a name with several addresses: try the next one
                continue
            try:
                self._check_peer(stream)
            except TargetRefused:
                await stream.aclose()
                raise
            return stream
        if failure is not None:
            raise failure
        raise TargetRefused(f"refused to connect to {host}: " + "; ".join(refusals))

    def _check_peer(self, stream: AsyncNetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if sock is None:
            return
        peer = _ip(sock.getpeername()[0])
        reason = refusal_reason(peer)
        if reason:
            raise TargetRefused(f"refused: connected to {peer}, a {reason} address")

    async def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> AsyncNetworkStream:
        raise TargetRefused("webhook deliveries do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through ``GuardedNetworkBackend``.

    Example:
        ```python
        async with httpx.AsyncClient(transport=GuardedTransport(), trust_env=False) as client:
            await client.post("https://hooks.example.com/modelpulse", content=b"{}")
        ```
    """

    def __init__(
        self,
        allow_private: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        # httpx offers no public hook for the network backend, so the pool is rebuilt around ours
        # with the same settings httpx would use (no proxy: a proxy would hide the real target).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(allow_private),
        )
