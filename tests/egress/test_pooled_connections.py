"""Pooled connections of the guarded transport: kept while the server keeps them, dropped once it closes.

``GuardedNetworkBackend`` answers httpcore's question before each request, "is this idle connection's
socket readable?" (a server that closed it), itself (``PolledStream``). Answered wrong one way, every
request would open a new connection; the other way, a request after the server closed the connection
would be sent down a dead socket and fail ("Server disconnected without sending a response"). Both are
tried here against a real loopback server, in plain HTTP and over TLS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest

from blocks.egress import EgressPolicy, GuardedTransport
from tests.support.certificates import self_signed

LOOPBACK = EgressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class KeepAliveServer:
    """Answers each request ``200 ok`` on a kept-alive connection; with ``close_after_one`` it closes
    every connection after its first answer. Counts the connections it accepted."""

    def __init__(self, close_after_one: bool, tls: ssl.SSLContext | None) -> None:
        self.close_after_one = close_after_one
        self.tls = tls
        self.connections = 0
        self.closed = asyncio.Event()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(
            self.serve, "127.0.0.1", 0, ssl=self.tls, ssl_shutdown_timeout=1 if self.tls else None
        )
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")  # GET: no body
                except asyncio.IncompleteReadError:
                    return
                writer.write(RESPONSE)
                await writer.drain()
                if self.close_after_one:
                    # Closed once the client has read the answer: a TLS close_notify sent with the answer
                    # would be read along with it, into the client's TLS buffer, where no poll of the
                    # socket sees it (httpcore's own backends behave alike).
                    await asyncio.sleep(0.1)
                    return
        finally:
            # Over TLS, close() sends close_notify and then waits for the client's, which an idle
            # client never sends: the connection is closed for the client from here on.
            writer.close()
            self.closed.set()


def _contexts(tls: bool, directory: Path) -> tuple[ssl.SSLContext | None, ssl.SSLContext | bool]:
    if not tls:
        return None, True
    files = self_signed(directory, ["127.0.0.1"])
    return files.server_context(), ssl.create_default_context(cafile=str(files.ca))


async def _two_requests(close_after_one: bool, tls: bool, directory: Path) -> int:
    server_tls, client_verify = _contexts(tls, directory)
    server = KeepAliveServer(close_after_one, server_tls)
    async with server as url:
        transport = GuardedTransport(policy=LOOPBACK, verify=client_verify)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            assert (await client.get(url + "/first")).text == "ok"
            if close_after_one:
                await asyncio.wait_for(server.closed.wait(), 5)
                await asyncio.sleep(0.05)  # the server's FIN (and TLS close_notify) reach the client's socket
            assert (await client.get(url + "/second")).text == "ok"
    return server.connections


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_an_idle_connection_is_reused_while_the_server_keeps_it(tls, tmp_path):
    assert asyncio.run(_two_requests(close_after_one=False, tls=tls, directory=tmp_path)) == 1


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_connection_the_server_closed_is_not_reused(tls, tmp_path):
    assert asyncio.run(_two_requests(close_after_one=True, tls=tls, directory=tmp_path)) == 2
