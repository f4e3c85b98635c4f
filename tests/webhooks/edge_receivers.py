"""Webhook receivers that misbehave at the socket level, on 127.0.0.1.

Each ``EdgeReceiver`` accepts connections on a real socket (optionally TLS) and hands each one to a
behaviour: never answer, trickle the answer a byte at a time, reset the connection, redirect, or
answer with a 10 MB body. It records what it managed to do, so a test can tell whether the
sender hung up early (``bytes_sent``, ``finished``, ``open_connections``).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

TEN_MB = 10 * 1024 * 1024


class EdgeReceiver:
    """A threaded TCP server whose connections get ``behaviour(receiver, connection)``."""

    def __init__(
        self,
        behaviour: Callable[[EdgeReceiver, socket.socket], None],
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        **options: Any,
    ) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.host = host
        self.options = options
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0
        self.finished = False  # the behaviour got to the end of what it meant to send
        self.open_connections = 0
        self.errors: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}/hook"

    def __enter__(self) -> EdgeReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with self.lock:
            self.open_connections += 1
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            self.behaviour(self, connection)
        except (OSError, ssl.SSLError) as error:  # the sender hung up, or refused our certificate
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            with self.lock:
                self.open_connections -= 1
            try:
                connection.close()
            except OSError:
                pass

    def send(self, connection: socket.socket, data: bytes) -> None:
        connection.sendall(data)
        with self.lock:
            self.bytes_sent += len(data)


def read_request(receiver: EdgeReceiver, connection: socket.socket) -> bytes:
    """Read one HTTP request (head and ``Content-Length`` body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    with receiver.lock:
        receiver.requests += 1
    return head + b"\r\n\r\n" + body


def answer_ok(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """A well-behaved answer (what a TLS receiver would say if the handshake succeeded)."""
    read_request(receiver, connection)
    receiver.send(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    receiver.finished = True


def never_answer(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """Read the request, then say nothing until the test ends."""
    read_request(receiver, connection)
    receiver.stop.wait(60)


def trickle(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """Send a valid answer one byte at a time (``interval`` apart): each read succeeds, slowly."""
    read_request(receiver, connection)
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    interval = receiver.options.get("interval", 0.5)
    for byte in answer:
        if receiver.stop.wait(interval):
            return
        receiver.send(connection, bytes([byte]))
    receiver.finished = True


def slow_body(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """Answer 200 at once, then send the (announced) body one byte every ``interval`` seconds."""
    read_request(receiver, connection)
    body = b"thanks, got it"
    receiver.send(connection, f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    for byte in body:
        if receiver.stop.wait(receiver.options.get("interval", 0.5)):
            return
        receiver.send(connection, bytes([byte]))
    receiver.finished = True


def reset(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """Read the request, then close with SO_LINGER 0: the sender gets a TCP RST, not an answer."""
    read_request(receiver, connection)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    receiver.finished = True


def redirect(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """Answer ``status`` (302) with ``location``."""
    read_request(receiver, connection)
    status = receiver.options.get("status", 302)
    location = receiver.options["location"]
    body = b"<a href='moved'>moved</a>"
    receiver.send(
        connection,
        f"HTTP/1.1 {status} Found\r\nLocation: {location}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body,
    )
    receiver.finished = True


def huge_answer(receiver: EdgeReceiver, connection: socket.socket) -> None:
    """Answer ``status`` with a 10 MB body, announced by Content-Length or sent chunked (``chunked``)."""
    read_request(receiver, connection)
    status = receiver.options.get("status", 200)
    chunked = receiver.options.get("chunked", False)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {TEN_MB}"
    receiver.send(connection, f"HTTP/1.1 {status} Whatever\r\n{framing}\r\n\r\n".encode())
    piece = b"x" * 65536
    for _ in range(TEN_MB // len(piece)):
        receiver.send(connection, f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
    if chunked:
        receiver.send(connection, b"0\r\n\r\n")
    receiver.finished = True
