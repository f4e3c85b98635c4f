"""Keys and rate limits under the real server: gunicorn with 2 workers, as `make up` runs the API.

Which worker answered each request is read from gunicorn's access log (its pid, per probe header),
so "every process" is checked, not assumed. Each request uses a new connection, so the kernel hands
them to both workers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import httpx
import pytest

from stack.topology import role_commands
from store.db import session_scope
from store.organizations import create_api_key
from store.rate_limits import WINDOW_SECONDS, window_start
from store.settings import Settings
from tests.support.servers import free_port, start_process, stop_process, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
# The README's promise: a revoked key is refused on every API process within this many seconds.
REVOCATION_SECONDS = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    pid: str
    response: httpx.Response


class Gunicorn:
    """The API under gunicorn (the argv of stack/supervisor.py) on a free loopback port, logging each
    request's worker pid and probe number."""

    def __init__(self, url: str, access_log: Path):
        self.url = url
        self.access_log = access_log
        self._probes = count()

    def send(
        self,
        headers: dict[str, str],
        requests: int,
        path: str = "/organizations/acme/webhooks",
        source: str = "127.0.0.1",
    ) -> list[Answer]:
        """``requests`` concurrent GETs, each on its own connection from the loopback address ``source``;
        answers in the order sent."""
        probes = [str(next(self._probes)) for _ in range(requests)]

        def one(probe: str) -> httpx.Response:
            with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as client:
                return client.get(self.url + path, headers=headers | {"X-Probe": probe, "Connection": "close"})

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(one, probes))
        pids = self._pids(probes)
        return [Answer(r.status_code, pids[p], r) for p, r in zip(probes, responses, strict=True)]

    def _pids(self, probes: list[str]) -> dict[str, str]:
        """The worker pid of each probe, from the access log (a line may land just after its response)."""
        deadline = time.monotonic() + 10
        while True:
            logged = dict(
                (match.group(2), match.group(1))
                for match in re.finditer(r"^<(\d+)> \d+ (\d+)$", self.access_log.read_text(), re.MULTILINE)
            )
            if all(probe in logged for probe in probes) or time.monotonic() > deadline:
                return {probe: logged.get(probe, "?") for probe in probes}
            time.sleep(0.05)


@pytest.fixture
def api_server(database_url, tmp_path) -> Iterator[Callable[..., Gunicorn]]:
    """``api_server(rate_limit=N, auth_failures=M)`` starts the API with 2 workers on the test's database
    (by default without the limit on refused keys per address: every request here comes from 127.0.0.1)."""
    processes = []

    def start(rate_limit: int = 6000, auth_failures: int = 0) -> Gunicorn:
        port = free_port()
        home = tmp_path / f"home-{port}"
        settings = Settings(home=home, database_url=database_url, api_port=port)
        argv = role_commands(settings)["api"]
        access_log = tmp_path / f"access-{port}.log"
        access_log.touch()
        argv += ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s %({x-probe}i)s"]
        assert argv[argv.index("--workers") + 1] == "2"
        env = os.environ | {
            "MODELPULSE_HOME": str(home),
            "MODELPULSE_DATABASE_URL": database_url,
            "MODELPULSE_RATE_LIMIT_PER_MINUTE": str(rate_limit),
            "MODELPULSE_AUTH_FAILURES_PER_MINUTE": str(auth_failures),
        }
        process = start_process(argv, tmp_path / f"gunicorn-{port}.log", env=env, cwd=ROOT)
        processes.append(process)
        wait_until_ready(f"http://127.0.0.1:{port}/health", process, timeout=120)
        return Gunicorn(f"http://127.0.0.1:{port}", access_log)

    yield start
    for process in processes:
        stop_process(process)


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ | {"MODELPULSE_DATABASE_URL": database_url},
        cwd=ROOT,
        check=True,
        timeout=120,
    )


def test_a_revoked_key_is_refused_by_every_worker_within_5_seconds(api_server, database_url):
    key = _cli(database_url, "keys", "create", "acme", "--by", "e2e").stdout.strip()
    key_id = _cli(database_url, "keys", "list", "acme").stdout.splitlines()[1].split()[0]
    assert key_id.startswith("key_")
    headers = {"Authorization": f"Bearer {key}"}
    api = api_server()

    # Both workers have served the key (so both hold it in their key cache).
    served: set[str] = set()
    deadline = time.monotonic() + 60
    while len(served) < 2 and time.monotonic() < deadline:
        answers = api.send(headers, 16)
        assert {a.status for a in answers} == {200}
        served |= {a.pid for a in answers}
    assert len(served) == 2, served

    revoked = _cli(database_url, "keys", "revoke", key_id, "--by", "e2e")
    assert revoked.stdout.startswith(f"revoked {key_id}")
    revoked_at = time.monotonic()

    # Within 5 s: a whole round of requests refused, by both workers ...
    while True:
        answers = api.send(headers, 16)
        statuses, pids = {a.status for a in answers}, {a.pid for a in answers}
        if statuses == {401} and len(pids) == 2:
            break
        assert statuses <= {200, 401}, statuses
        assert time.monotonic() - revoked_at < REVOCATION_SECONDS, "a worker still accepts the revoked key"
    # ... and from then on, every request by every worker.
    later = api.send(headers, 64)
    assert {a.status for a in later} == {401}
    assert len({a.pid for a in later}) == 2
    problem = later[0].response.json()
    assert problem["detail"] == "The API key has been revoked."
    assert later[0].response.headers["content-type"].startswith("application/problem+json")


def test_the_rate_limit_is_shared_by_the_workers(api_server, database_url):
    limit = 200  # counted in batches of 2 per worker: at most limit + 2 x 1 admitted
    api = api_server(rate_limit=limit)
    for _attempt in range(2):
        with session_scope(database_url) as session:
            headers = {"Authorization": f"Bearer {create_api_key(session, 'acme')}"}
        started = time.time()
        answers = api.send(headers, 2 * limit)
        if window_start(started) != window_start(time.time()):
            continue  # the minute turned during the burst and the count restarted: again, with a new key
        break
    else:
        pytest.fail("two bursts in a row crossed a minute boundary")
    admitted = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    assert len(admitted) + len(refused) == 2 * limit
    assert limit <= len(admitted) <= limit + 2
    # both workers admitted and refused: neither counted alone (that would admit 2 x limit)
    assert len({a.pid for a in admitted}) == 2 and len({a.pid for a in refused}) == 2
    response = refused[0].response
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Limit"] == str(limit) and response.headers["RateLimit-Remaining"] == "0"


def test_refused_keys_per_address_are_counted_by_the_workers_together(api_server):
    limit = 20  # 2 workers x 4 threads: at most 8 lookups in flight when a worker reads the shared total
    api = api_server(auth_failures=limit)
    headers = {"Authorization": "Bearer mpk_not-a-real-key"}
    # The kernel usually hands a burst's connections to both workers, but may give one worker all of a
    # burst's refusals: then the burst shows nothing about sharing, and another comes from a new address
    # (a counter of its own) until both workers have refused in one burst.
    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        # A burst must not straddle a minute: start one with time left.
        left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
        if left < 30:
            time.sleep(left + 0.05)
        started = time.time()
        answers = api.send(headers, 4 * limit, source=source)
        assert window_start(started) == window_start(time.time()), "the burst took more than 30 s"
        looked_up = [a for a in answers if a.status == 401]
        refused = [a for a in answers if a.status == 429]
        assert len(looked_up) + len(refused) == 4 * limit
        assert limit <= len(looked_up) <= limit + 8
        if len({a.pid for a in refused}) == 2:  # each worker refused: neither counted alone
            break
    else:
        pytest.fail("in 4 bursts, one worker answered every refusal")
    problem = refused[0].response.json()
    assert problem["type"] == "urn:modelpulse:problem:authentication-failures"
    assert 1 <= int(refused[0].response.headers["Retry-After"]) <= 60
