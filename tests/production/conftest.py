"""The production shape on one host: two "machines" (role sets with their own ``MODELPULSE_HOME``)
sharing one PostgreSQL, one Redis and one Prefect server (on that PostgreSQL, with Redis messaging);
the machines themselves are ``tests.support.cluster``.

    machine A: modelpulse up --roles prefect,api,worker,dispatcher
    machine B: modelpulse up --roles api,worker,dispatcher     (MODELPULSE_PREFECT_API_URL -> A's)

Each is started with the documented command, as a user would, and killed, restarted or stopped by
the tests. PostgreSQL and Redis are started here from the machine's packages (``.ci/run`` installs
them); where they are missing, the tests skip and say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, RoleSet, machine_environment
from tests.support.databases import (
    POSTGRES_MISSING,
    REDIS_MISSING,
    PostgresServer,
    RedisServer,
    postgres_binaries,
    redis_binary,
)
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    """Extra environment for both machines; a test module overrides this fixture to change settings."""
    return {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_settings) -> Iterator[Cluster]:
    """The two-machine production shape, fresh for each test module (with its ``cluster_settings``)."""
    if postgres_binaries() is None:
        pytest.skip(POSTGRES_MISSING)
    if redis_binary() is None:
        pytest.skip(REDIS_MISSING)
    base = tmp_path_factory.mktemp("production")
    postgres = PostgresServer.start_new()
    redis = RedisServer.start_new(base / "redis")
    suffix = uuid.uuid4().hex[:8]
    postgres.create_database(f"modelpulse_{suffix}")
    postgres.create_database(f"prefect_{suffix}")
    prefect_port = free_port()
    prefect_api_url = f"http://127.0.0.1:{prefect_port}/api"
    shared = {
        "MODELPULSE_DATABASE_URL": postgres.url(f"modelpulse_{suffix}"),
        "MODELPULSE_REDIS_URL": redis.url,
        **cluster_settings,
    }
    a = RoleSet(
        "machine-a",
        "prefect,api,worker,dispatcher",
        machine_environment(
            base / "a",
            api_port := free_port(),
            shared,
            MODELPULSE_PREFECT_PORT=str(prefect_port),
            MODELPULSE_PREFECT_DATABASE_URL=postgres.url(f"prefect_{suffix}", "asyncpg"),
        ),
        base / "a",
        api_port,
    )
    b = RoleSet(
        "machine-b",
        "api,worker,dispatcher",
        machine_environment(base / "b", api_port := free_port(), shared, MODELPULSE_PREFECT_API_URL=prefect_api_url),
        base / "b",
        api_port,
    )
    cluster = Cluster(postgres, redis, a, b, prefect_api_url, shared["MODELPULSE_DATABASE_URL"])
    try:
        a.start()
        b.start()
        yield cluster
    except BaseException:
        print(a.log_tails(), b.log_tails(), sep="\n")
        raise
    finally:
        survivors = b.stop() + a.stop()
        redis.stop()
        postgres.destroy()
    # `up` stops everything it started (a leftover gunicorn worker or flow run would hold memory and ports).
    assert not survivors, f"processes outlived `up`'s stop: {survivors}"
