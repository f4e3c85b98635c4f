"""The egress policy inside httpx: network backends that resolve the host themselves, connect only to
permitted addresses, and check the peer. Webhook deliveries use the async transport, the Splunk HEC
client the sync one.

Exceptions (both ``httpcore.ConnectError``, which httpx raises as ``httpx.ConnectError`` with this
exception as ``__cause__``)::

    TargetRefused      every address of the host is refused by the policy
    HostNotResolved    the host name does not resolve
"""

from __future__ import annotations

import socket
import ssl
import typing

import anyio
import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream, NetworkBackend, NetworkStream
from httpcore._backends.auto import AutoBackend
from httpcore._backends.sync import SyncBackend
from httpcore._utils import is_socket_readable

from blocks.egress.policy import EgressPolicy, EgressRefused, addresses_of, egress_policy, ip


class TargetRefused(httpcore.ConnectError):
    """A connection refused because of the address it would reach."""


class HostNotResolved(httpcore.ConnectError):
    """The host name does not resolve; ``host`` is the name."""

    def __init__(self, host: str) -> None:
        super().__init__(f"could not resolve host {host}")
        self.host = host


def _permitted(policy: EgressPolicy | None, host: str, infos: list[typing.Any]) -> list[str]:
    if not infos:
        raise HostNotResolved(host)
    try:
        return [str(address) for address in (policy or egress_policy()).permitted(host, addresses_of(infos))]
    except EgressRefused as refused:
        raise TargetRefused(str(refused)) from None


def _check_peer(policy: EgressPolicy | None, sock: socket.socket | None) -> None:
    if sock is None:
        return
    peer = ip(sock.getpeername()[0])
    if reason := (policy or egress_policy()).refusal(peer):
        raise TargetRefused(f"refused: connected to {peer}, {reason}")


class PolledStream(AsyncNetworkStream):
    """An httpcore stream that answers "is it readable?" with one poll of the socket it was opened on.

    Before every request, httpcore asks each idle connection of the pool whether its socket is readable
    (a server that closed it). anyio answers by building every attribute of the socket first, a
    ``getpeername()`` among them: ~8 % of a dispatcher's CPU at 60 events/s, for a poll of microseconds.
    """

    def __init__(self, inner: AsyncNetworkStream, sock: socket.socket) -> None:
        self._inner = inner
        self._socket = sock

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        # TLS runs over the same socket: its readability is still the connection's.
        return PolledStream(await self._inner.start_tls(ssl_context, server_hostname, timeout), self._socket)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class GuardedNetworkBackend(AsyncNetworkBackend):
    """Resolves the host itself, connects only to a permitted address, and checks the peer.

    ``policy=None`` follows this process's settings at each connection.
    """

    def __init__(self, policy: EgressPolicy | None = None) -> None:
        self._policy = policy
        self._inner = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise HostNotResolved(host) from error
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:g} s") from error
        failure: Exception | None = None
        for address in _permitted(self._policy, host, list(infos)):
            # Connect to the checked address, not the name: a second lookup could answer differently.
            try:
                stream = await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error  # a name with several addresses: try the next one
                continue
            sock = stream.get_extra_info("socket")
            try:
                _check_peer(self._policy, sock)
            except TargetRefused:
                await stream.aclose()
                raise
            return stream if sock is None else PolledStream(stream, sock)
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> AsyncNetworkStream:
        raise TargetRefused("outbound connections do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedSyncNetworkBackend(NetworkBackend):
    """``GuardedNetworkBackend`` for synchronous clients."""

    def __init__(self, policy: EgressPolicy | None = None) -> None:
        self._policy = policy
        self._inner = SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise HostNotResolved(host) from error
        failure: Exception | None = None
        for address in _permitted(self._policy, host, infos):
            try:
                stream = self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
                continue
            try:
                _check_peer(self._policy, stream.get_extra_info("socket"))
            except TargetRefused:
                stream.close()
                raise
            return stream
        assert failure is not None
        raise failure

    def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> NetworkStream:
        raise TargetRefused("outbound connections do not use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


def _pool_around(backend: typing.Any, built: typing.Any, limits: httpx.Limits) -> typing.Any:
    """The pool httpx ``built``, rebuilt around ``backend``: httpx offers no public hook for the network
    backend. Same TLS context and limits, and no proxy (a proxy would hide the real target)."""
    return type(built)(
        ssl_context=built._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )


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
        policy: EgressPolicy | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._pool = _pool_around(GuardedNetworkBackend(policy), self._pool, limits)


class GuardedSyncTransport(httpx.HTTPTransport):
    """``GuardedTransport`` for ``httpx.Client``."""

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._pool = _pool_around(GuardedSyncNetworkBackend(policy), self._pool, limits)
