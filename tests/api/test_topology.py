"""`modelpulse up --roles`: combinations that cannot work are refused with one line saying why, before
anything starts; the environment each machine's processes share follows the settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack.topology import check_roles, redis_environment, role_commands, stack_environment
from store.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg://mp:pw@db.internal/modelpulse"


def up(tmp_path: Path, roles: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPULSE_")}
    env |= {"MODELPULSE_HOME": str(tmp_path / "home"), **settings}
    return subprocess.run(
        [sys.executable, "-m", "stack.cli", "up", "--roles", roles],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("roles", "settings", "reason"),
    [
        ("worker", {}, "runs no Prefect server here: set MODELPULSE_PREFECT_API_URL"),
        ("api,worker,dispatcher", {"MODELPULSE_PREFECT_API_URL": "http://prefect:4200/api"},
         "SQLite cannot be shared across machines"),
        ("prefect,api", {}, "SQLite cannot be shared across machines"),
        ("prefect,api,worker,dispatcher", {"MODELPULSE_PREFECT_API_URL": "http://prefect:4200/api"},
         "names a Prefect server run elsewhere"),
        ("prefect,api,worker,dispatcher", {"MODELPULSE_REDIS_URL": "redis://cache:6379/0"},
         "which SQLite cannot serve: set MODELPULSE_PREFECT_DATABASE_URL"),
        ("prefect,api,worker,dispatcher", {"MODELPULSE_PREFECT_DATABASE_URL": "mysql://prefect"},
         "MODELPULSE_PREFECT_DATABASE_URL must be postgresql+asyncpg"),
        ("prefect,api,worker,dispatcher", {"MODELPULSE_REDIS_URL": "http://cache"}, "MODELPULSE_REDIS_URL must be"),
    ],
)
def test_a_combination_that_cannot_work_is_refused_in_one_line(tmp_path, roles, settings, reason):
    result = up(tmp_path, roles, **settings)
    assert result.returncode == 2, result
    assert result.stdout == ""  # nothing was started
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("modelpulse up: ") and reason in line
    assert not (tmp_path / "home" / "logs").exists()


def test_an_unknown_role_is_a_usage_error(tmp_path):
    result = up(tmp_path, "api,scheduler")
    assert result.returncode == 2
    assert "unknown role 'scheduler': the roles are prefect, api, worker, dispatcher" in result.stderr


@pytest.mark.parametrize(
    ("roles", "settings"),
    [
        ({"prefect", "api", "worker", "dispatcher"}, {}),  # make up: everything on SQLite
        ({"prefect", "api", "worker", "dispatcher"},
         {"database_url": PG, "prefect_database_url": "postgresql+asyncpg://p@db/prefect",
          "redis_url": "redis://cache:6379/0"}),
        ({"prefect"}, {"database_url": PG, "prefect_database_url": "postgresql+asyncpg://p@db/prefect",
                       "redis_url": "redis://cache:6379/0"}),
        ({"api", "worker", "dispatcher"}, {"database_url": PG, "prefect_api_url": "http://prefect:4200/api"}),
        ({"worker"}, {"database_url": PG, "prefect_api_url": "http://prefect:4200/api"}),
    ],
)
def test_workable_combinations_pass(tmp_path, roles, settings):
    check_roles(Settings(home=tmp_path, **settings), roles)


def test_redis_configures_prefects_multi_process_server(tmp_path):
    settings = Settings(
        home=tmp_path, database_url=PG, prefect_database_url="postgresql+asyncpg://p@db/prefect",
        redis_url="redis://cache:6379/0",
    )
    env = stack_environment(settings)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://p@db/prefect"
    assert env.items() >= redis_environment("redis://cache:6379/0").items()
    assert env["PREFECT_SERVER_EVENTS_MESSAGING_BROKER"] == "prefect_redis.messaging"
    # The API process serves only the API; the loop services are their own process.
    assert "--no-services" in role_commands(settings)["prefect-server"]
    assert "--no-services" not in role_commands(Settings(home=tmp_path))["prefect-server"]


def test_prefects_event_consumers_read_in_batches_on_redis(monkeypatch):
    from prefect.settings import Settings as PrefectSettings

    for name, value in redis_environment("redis://cache:6379/0").items():
        monkeypatch.setenv(name, value)
    services = PrefectSettings().server.services
    # A misspelt name would be ignored by Prefect, leaving one message per read.
    assert services.event_persister.read_batch_size == 50
    assert services.triggers.read_batch_size == 50
    assert services.task_run_recorder.read_batch_size == 50


def test_a_machine_without_the_prefect_role_uses_the_given_prefect_api(tmp_path):
    settings = Settings(home=tmp_path, database_url=PG, prefect_api_url="http://prefect.internal:4200/api/")
    env = stack_environment(settings)
    assert env["PREFECT_API_URL"] == "http://prefect.internal:4200/api"
    assert env["MODELPULSE_DATABASE_URL"] == PG
    assert "PREFECT_REDIS_MESSAGING_URL" not in env


def test_run_refuses_an_unknown_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPULSE_")}
    result = subprocess.run(
        [sys.executable, "-m", "stack.cli", "run", "scheduler"],
        cwd=ROOT, env=env | {"MODELPULSE_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "one of prefect-server, prefect-services, flow-run-forks, worker, dispatcher, api" in result.stderr
