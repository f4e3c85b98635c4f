"""Which processes a machine runs (its roles), their environment, and the combinations refused.

A ModelPulse installation is four roles:

    prefect      the Prefect server: API + UI, and its background services (their own process when
                 Redis carries Prefect's messaging); this machine also migrates ModelPulse's database
                 and deploys prefect.yaml
    api          the REST API (gunicorn, MODELPULSE_API_WORKERS processes)
    worker       Prefect process workers (MODELPULSE_WORKERS): exports, syncs, sweeps, drift checks;
                 and the flow-run fork server their runs start from (``stack.flow_run_forks``)
    dispatcher   webhook dispatchers (MODELPULSE_DISPATCHERS): outbox -> fan-out-events runs

One machine may run all four (``make up``: SQLite for both databases). Several machines share one
PostgreSQL for ModelPulse, one Prefect server (on PostgreSQL, with Redis for more than one Prefect
process) and run any roles but ``prefect`` against ``MODELPULSE_PREFECT_API_URL``.

Example:
    ```python
    settings = get_settings()
    check_roles(settings, {"api", "worker"})   # raises TopologyError with a one-line reason
    env = stack_environment(settings)
    ```
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Collection
from pathlib import Path

from store.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("prefect", "api", "worker", "dispatcher")


class TopologyError(ValueError):
    """A role set that cannot work with these settings; the message is one line saying why."""


def parse_roles(text: str) -> set[str]:
    """``"api, worker"`` -> ``{"api", "worker"}``; an unknown role is refused."""
    roles = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise TopologyError(f"unknown role {unknown[0]!r}: the roles are {', '.join(ROLES)}")
    if not roles:
        raise TopologyError(f"no role given: the roles are {', '.join(ROLES)}")
    return roles


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def check_roles(settings: Settings, roles: Collection[str]) -> None:
    """Refuse, with one line saying why, a role set that cannot work with these settings."""
    split = set(roles) != set(ROLES) or settings.prefect_api_url is not None
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://", "redis+sentinel://")):
        raise TopologyError("MODELPULSE_REDIS_URL must be a redis://, rediss:// or redis+sentinel:// URL")
    if "prefect" in roles and settings.prefect_api_url:
        raise TopologyError(
            "MODELPULSE_PREFECT_API_URL names a Prefect server run elsewhere: drop the prefect role here, "
            "or unset it to run the Prefect server on this machine"
        )
    if "prefect" not in roles and not settings.prefect_api_url:
        raise TopologyError(
            f"--roles {','.join(sorted(roles))} runs no Prefect server here: set MODELPULSE_PREFECT_API_URL "
            "to the API of the machine that runs the prefect role"
        )
    if split and _is_sqlite(settings.resolved_database_url):
        raise TopologyError(
            "a machine running only some roles shares ModelPulse's database with others, and SQLite cannot "
            "be shared across machines: set MODELPULSE_DATABASE_URL=postgresql+psycopg://..."
        )
    if "prefect" in roles:
        prefect_url = settings.resolved_prefect_database_url
        if not prefect_url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
            raise TopologyError(
                "MODELPULSE_PREFECT_DATABASE_URL must be postgresql+asyncpg://... (or sqlite+aiosqlite:///...)"
            )
        if settings.redis_url and _is_sqlite(prefect_url):
            raise TopologyError(
                "Redis messaging runs the Prefect server as several processes, which SQLite cannot serve: "
                "set MODELPULSE_PREFECT_DATABASE_URL=postgresql+asyncpg://..."
            )


def redis_environment(redis_url: str) -> dict[str, str]:
    """Prefect's self-hosted multi-process setup: every piece of shared server state in Redis."""
    return {
        "PREFECT_SERVER_EVENTS_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE": "prefect_redis.cleanup_queue",
        "PREFECT_SERVER_DOCKET_URL": redis_url,
        "PREFECT_REDIS_MESSAGING_URL": redis_url,
        "PREFECT_REDIS_WORKER_CLEANUP_QUEUE_URL": redis_url,
        # The Prefect server publishes what a client sends over its events websocket to Redis in
        # batches of 5, or every 10 s (prefect_redis's defaults): the three state events of a
        # `fan-out-events` task run waited up to 10 s before the task-run recorder could see them, and
        # the run showed in the UI that much later. Every second keeps the batching of a busy
        # connection and bounds the wait of a quiet one.
        "PREFECT_REDIS_MESSAGING_PUBLISHER_PUBLISH_EVERY": "1",
        # Each of the three consumers of Prefect's event stream (event persister, triggers, task-run
        # recorder) reads one message per round trip by default: a read, an acknowledgement and a look
        # for abandoned messages each, for every event. Events arrive in the publisher's batches, and a
        # consumer now takes what is waiting, up to 50, in one read: 15.7 -> 7.2 of those commands per
        # ModelPulse event at 40 events/s (bench/RESULTS.md). A message is still acknowledged only once
        # handled, and one left unacknowledged is taken over after 5 s as before.
        **dict.fromkeys(
            (
                "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE",
                "PREFECT_SERVER_SERVICES_TRIGGERS_READ_BATCH_SIZE",
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE",
            ),
            "50",
        ),
    }


# Prefect's task-run recorder writes every task-run event in a transaction of its own by default
# (batch size 1): three or more writes per task run, each racing the API's own writes. On SQLite (the
# default stack) a request whose transaction loses that race is answered 503 (SQLITE_BUSY_SNAPSHOT),
# and Prefect's client tries again 2 s later: a flow run started while task runs were being recorded
# began 2 s late. In batches of up to 100 events, written at least every second, the recorder writes
# about once a second, and a task run shows in the UI at most a second later.
#
# Memoized block registration (Prefect's default) imports every installed Prefect collection at the
# server's start to hash what it would register: prefect_aws (boto3) and prefect_gcp (the Google Cloud
# SDKs, pandas, pyarrow), ~300 MB the server then holds for nothing (505 -> 200 MB RSS at rest, 7.6 ->
# 5.1 CPU-s to start, measured on SQLite). Unmemoized, the server registers its own block types and the
# collections' from the catalog it ships, importing none of them; ModelPulse's own block types
# (prefect_aws's and prefect_gcp's credentials among them) are registered by `prefect-setup`.
PREFECT_SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}


def stack_environment(settings: Settings) -> dict[str, str]:
    """The environment every process of this machine shares (this process's own, completed)."""
    home = settings.home.resolve()
    prefect_home = home / "prefect"
    env = dict(os.environ)
    api_url = settings.resolved_prefect_api_url
    env.update(
        {
            "MODELPULSE_HOME": str(home),
            "MODELPULSE_DATABASE_URL": settings.resolved_database_url,
            "MODELPULSE_API_PORT": str(settings.api_port),
            "MODELPULSE_PREFECT_PORT": str(settings.prefect_port),
            "MODELPULSE_ROOT": str(ROOT),
            # Every ModelPulse process of this machine writes its Prometheus metrics here; the API's
            # `/metrics` serves their sum (store/metrics.py). `up` empties it when it starts.
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_directory(settings)),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
            # The work pool's command, `modelpulse-flow-run`, is a script of this installation.
            "PATH": os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p),
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_API_HOST": settings.bind_host,
            "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
            "PREFECT_API_DATABASE_CONNECTION_URL": settings.resolved_prefect_database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": api_url,
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            # Persisted flow and task results (what a retried run reuses) go here, not under the cwd.
            "PREFECT_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
            # The Prefect server answers 500 while its database is unreachable (a restart, a
            # failover). Retried like a 503 (with backoff, about a minute in all), a flow run's
            # state change or a fan-out's secrets read outlives the outage instead of leaving the
            # run stuck Pending, holding its deployment's concurrency slot for the lease's 5 min.
            "PREFECT_CLIENT_RETRY_EXTRA_CODES": "500",
            # Heartbeats drive the automation that marks a run whose process died Crashed
            # (flows/zombie_runs.py); Prefect's default, 180 s, would take 9 minutes to notice.
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(settings.flow_heartbeat_seconds),
            **PREFECT_SERVER_TUNING,
        }
    )
    # How often a worker asks for runs due (unless set): Prefect's default. A run scheduled now (a
    # triggered export) wakes the worker through Prefect's event stream instead (stack/prefect_worker.py),
    # and a schedule's runs are fetched this far ahead of their time (PREFECT_WORKER_PREFETCH_SECONDS, 10).
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "10")
    if settings.redis_url:
        env.update(redis_environment(settings.redis_url))
    return env


def metrics_directory(settings: Settings) -> Path:
    return settings.home.resolve() / "metrics"


def local_host(settings: Settings) -> str:
    """The address this machine reaches its own servers at."""
    return "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::", "") else settings.bind_host


def worker_name(settings: Settings, index: int) -> str:
    """A name per worker that stays the same across restarts and differs across machines and homes."""
    home = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:6]
    return f"{socket.gethostname()}-{home}-{index}"


def role_commands(settings: Settings) -> dict[str, list[str]]:
    """Every process kind, as the command line a container or a systemd unit can run.

    ``modelpulse run NAME`` runs one of these with this machine's environment.
    """
    python = sys.executable
    prefect_server = [python, "-m", "stack.prefect_server", "start", "--host", settings.bind_host,
                      "--port", str(settings.prefect_port)]
    if settings.redis_url:
        prefect_server.append("--no-services")
    return {
        "prefect-server": prefect_server,
        "prefect-services": [python, "-m", "stack.prefect_services"],
        "flow-run-forks": [python, "-m", "stack.flow_run_forks"],
        "worker": [python, "-m", "stack.prefect_worker", "start", "--pool", settings.work_pool, "--type", "process",
                   "--limit", str(settings.worker_runs)],
        "dispatcher": [python, "-m", "flows.fan_out"],
        "api": [
            python, "-m", "gunicorn", "api.wsgi:app",
            "--bind", f"{settings.bind_host}:{settings.api_port}",
            "--workers", str(settings.api_workers), "--threads", "4", "--timeout", "60",
            "--keep-alive", str(settings.api_keepalive_seconds),
            "--access-logfile", "-",
            # gunicorn 26's control socket defaults to one path per user, shared by every stack.
            "--no-control-socket",
        ],
    }
