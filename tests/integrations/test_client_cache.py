"""The connection blocks' client cache: bounded (least recently used first out, closed), and a record's
clients forgotten when the API replaces or deletes it."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from blocks import cache
from blocks.connections import block_document_name
from blocks.splunk import SplunkHecConnection
from tests.fakes.splunk import SplunkHecFake

CHANGES = 10_000
CONNECT_EVERY = 10  # one client in ten opens a connection: ~1,000 sockets, four times the bound


def _open_descriptors() -> int:
    gc.collect()  # sockets earlier tests of this worker left to the collector close now, not mid-count
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def _hec(url: str, token: str) -> SplunkHecConnection:
    # Plain http, so each client's cost is its socket, not a TLS context.
    return SplunkHecConnection(hec_url=url, hec_token=token, verify_ssl=False)


@pytest.fixture
def credential_churn() -> Iterator[SplunkHecFake]:
    """The HEC the churning clients connect to."""
    with SplunkHecFake() as hec:
        yield hec


def test_ten_thousand_credential_changes_keep_clients_and_descriptors_flat(credential_churn):
    hec = credential_churn
    first = _hec(hec.url, "token-0").get_client()
    samples = {}
    for change in range(CHANGES):
        client = _hec(hec.url, f"token-{change}").get_client()
        if change % CONNECT_EVERY == 0:
            # A request leaves a pooled keep-alive connection: a descriptor open until the client closes.
            assert client.get("/services/collector/health").status_code == 200
        if change + 1 in (2 * cache.MAX_CLIENTS, CHANGES // 2, CHANGES):
            samples[change + 1] = (cache.cache_size(), _open_descriptors())
    sizes = {size for size, _ in samples.values()}
    descriptors = [count for _, count in samples.values()]
    assert sizes == {cache.MAX_CLIENTS}, samples
    # Flat: the connection pool of every evicted client was closed with it (a connected live one holds
    # a socket here and one in the fake's thread), so the count does not grow with the changes.
    assert max(descriptors) - min(descriptors) <= 16, samples
    assert first.is_closed


def test_a_hit_moves_the_client_to_the_back_of_the_line(monkeypatch):
    monkeypatch.setattr(cache, "MAX_CLIENTS", 2)
    kept = _hec("http://hec.invalid", "kept")
    client = kept.get_client()
    _hec("http://hec.invalid", "a").get_client()
    assert kept.get_client() is client  # used again: now the most recent
    _hec("http://hec.invalid", "b").get_client()
    assert kept.get_client() is client and not client.is_closed
    assert cache.cache_size() == 2


def test_forget_drops_and_closes_the_clients_of_a_record():
    block = _hec("http://hec.invalid", "old-token")
    block._block_document_name = block_document_name("export", "exp_01jdx3k8v5c8m2y7q4n6t9w0ab")
    client = block.get_client()
    other = _hec("http://hec.invalid", "another-record").get_client()

    assert cache.forget("export", "exp_01jdx3k8v5c8m2y7q4n6t9w0ab") == 1
    assert client.is_closed and not other.is_closed
    assert cache.forget("export", "exp_01jdx3k8v5c8m2y7q4n6t9w0ab") == 0
    assert block.get_client() is not client
    assert cache.forget("integration", "int_unknown") == 0


class _Unclosable:
    closed = False

    def close(self) -> None:
        raise OSError("already gone")


class _GapicLike:
    class transport:  # noqa: N801 - the attribute a GAPIC client has
        closed = False

        @classmethod
        def close(cls) -> None:
            cls.closed = True


def test_evicted_clients_are_closed_however_they_close(monkeypatch):
    monkeypatch.setattr(cache, "MAX_CLIENTS", 1)
    built = [_Unclosable(), _GapicLike(), object(), _Unclosable()]
    for index, client in enumerate(built):
        assert cache.cached_client(_hec("http://hec.invalid", str(index)), {}, lambda _o, c=client: c) is client
    assert _GapicLike.transport.closed  # a failing close() or no close at all is not an error
    assert cache.cache_size() == 1
