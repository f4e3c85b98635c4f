"""The egress policy inside urllib3, which the official clients of Elasticsearch (elastic-transport),
Datadog (datadog-api-client), AWS (botocore) and, through requests, MLflow and Google's REST transports
pool their connections with.

The guard sits in the pooled connection class: ``_new_conn`` resolves the host, drops the addresses
the policy refuses and opens the socket to a permitted address itself, so TLS still verifies the host
name while the address connected to is the one that was checked (DNS rebinding included). Pools and
pool managers are pointed at the guarded classes with ``guard_pool`` and ``guard_pool_manager``.
"""

from __future__ import annotations

import functools
import socket
from typing import TYPE_CHECKING, Any

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from blocks.egress.cookies import refuse_cookies
from blocks.egress.policy import EgressRefused, addresses_of, egress_policy

if TYPE_CHECKING:  # only the MLflow and Vertex AI blocks have requests sessions; the others need not load it
    import requests


class ConnectionRefusedByPolicy(NewConnectionError):
    """Every address of the host is refused by the egress policy."""


class _GuardedConnection:
    """Mixed in before a urllib3 ``HTTPConnection`` class (or a library's subclass of it)."""

    def _new_conn(self) -> socket.socket:
        host = self._dns_host  # type: ignore[attr-defined]
        try:
            infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)  # type: ignore[attr-defined]
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error  # type: ignore[attr-defined, arg-type]
        try:
            permitted = egress_policy().permitted(host, addresses_of(infos))
        except EgressRefused as refused:
            raise ConnectionRefusedByPolicy(self, str(refused)) from None  # type: ignore[arg-type]
        failure: Exception | None = None
        for address in permitted:
            self._dns_host = str(address)  # what the parent connects to; TLS still names self.host
            try:
                return super()._new_conn()  # type: ignore[misc]
            except ConnectTimeoutError as error:  # NewConnectionError included: try the next address
                failure = error
            finally:
                self._dns_host = host
        assert failure is not None
        raise failure


@functools.cache
def guarded_connection_class(connection_class: type[HTTPConnection]) -> type[HTTPConnection]:
    """``connection_class`` with the egress guard in front of its ``_new_conn``."""
    if issubclass(connection_class, _GuardedConnection):
        return connection_class
    return type(f"Guarded{connection_class.__name__}", (_GuardedConnection, connection_class), {})


@functools.cache
def guarded_pool_class(pool_class: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``pool_class`` whose connections are guarded."""
    connection_class = guarded_connection_class(pool_class.ConnectionCls)
    if pool_class.ConnectionCls is connection_class:
        return pool_class
    return type(f"Guarded{pool_class.__name__}", (pool_class,), {"ConnectionCls": connection_class})


def guard_pool(pool: HTTPConnectionPool) -> HTTPConnectionPool:
    """Guard the connections ``pool`` opens from now on (call it before the first request)."""
    pool.ConnectionCls = guarded_connection_class(pool.ConnectionCls)
    return pool


def guard_pool_manager(manager: PoolManager, pool_classes: dict[str, Any] | None = None) -> PoolManager:
    """Guard every pool ``manager`` creates from now on.

    ``pool_classes`` is the manager's scheme -> pool class table when a library keeps its own (botocore
    shares one dict between its managers); it is updated in place.
    """
    table = pool_classes if pool_classes is not None else manager.pool_classes_by_scheme
    defaults = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
    guarded = {scheme: guarded_pool_class(table.get(scheme, defaults[scheme])) for scheme in defaults}
    if pool_classes is not None:
        pool_classes.update(guarded)
    else:
        manager.pool_classes_by_scheme = guarded
    return manager


def guard_requests_session(session: requests.Session) -> requests.Session:
    """Guard every connection a ``requests`` session's adapters open, and keep no cookie in it
    (``blocks.egress.cookies``: MLflow shares one session among tenants). Idempotent."""
    refuse_cookies(session)
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if manager is not None:
            guard_pool_manager(manager)
    return session
