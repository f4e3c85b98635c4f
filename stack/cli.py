"""The ``modelpulse`` command line.

    modelpulse up [--roles R,R]         bring this machine's roles up (default: all; what `make up` runs)
    modelpulse run PROCESS [ARGS]       run one process of a role in the foreground (containers, systemd)
    modelpulse keys create ORG_ID       create an API key (and the organization if missing); prints the key
                                        --role admin|publisher|viewer (default admin)
    modelpulse keys list ORG_ID         the organization's keys: role, created, by whom, last used, status
    modelpulse keys revoke KEY_ID       revoke a key (by id, or the key itself); every API process refuses it within 5 s
    modelpulse db upgrade               apply the database migrations
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from store.key_roles import DEFAULT_KEY_ROLE, KEY_ROLES
from store.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# A longer expiry is "never" in practice, and a date past year 9999 cannot be stored.
MAX_EXPIRY_DAYS = 36500


@click.group()
def main() -> None:
    """ModelPulse integrations."""


@main.group()
def keys() -> None:
    """API keys: create, list, revoke."""


def default_actor() -> str:
    """Who runs this command: ``user@hostname`` of the operating system."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _actor(_context: click.Context, _param: click.Parameter, value: str | None) -> str:
    from store.organizations import ACTOR_MAX_LENGTH

    value = default_actor() if value is None else value.strip()
    if not value or len(value) > ACTOR_MAX_LENGTH or not value.isprintable():
        raise click.BadParameter(f"1-{ACTOR_MAX_LENGTH} printable characters")
    return value[:ACTOR_MAX_LENGTH]


BY_OPTION = click.option(
    "--by",
    "actor",
    metavar="WHO",
    callback=_actor,
    help="Who does this, as recorded with the key (default: your user@hostname).",
)


@contextmanager
def database_session() -> Iterator[Session]:
    """A migrated database's session; database failures become a CLI error, not a traceback."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import session_scope
    from store.migrate import upgrade

    url = get_settings().resolved_database_url
    try:
        upgrade(url)
        with session_scope(url) as session:
            yield session
    except (SQLAlchemyError, CommandError) as error:
        # The driver's own message (its first line): the URL, and so any password in it, is not repeated.
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise click.ClickException(f"database error: {reason}") from None


def _timestamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else "-"


@keys.command("create")
@click.argument("organization_id")
@click.option(
    "--expires-in",
    "expires_in_days",
    type=click.FloatRange(min=0, min_open=True, max=MAX_EXPIRY_DAYS),
    metavar="DAYS",
    help="The key stops working this many days from now (fractions allowed); default: never.",
)
@click.option(
    "--role",
    type=click.Choice(KEY_ROLES),
    default=DEFAULT_KEY_ROLE,
    show_default=True,
    help="admin: every operation; publisher: only POST .../events and .../inference-logs; viewer: only reads.",
)
@BY_OPTION
def create_key(organization_id: str, expires_in_days: float | None, role: str, actor: str) -> None:
    """Create an API key for ORGANIZATION_ID (created if missing); prints only the key."""
    from store.models import utcnow
    from store.organizations import check_organization_id, create_api_key

    try:
        check_organization_id(organization_id)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="ORGANIZATION_ID") from None
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    with database_session() as session:
        key = create_api_key(session, organization_id, created_by=actor, expires_at=expires_at, role=role)
    click.echo(key)


KEY_COLUMNS = (
    "ID", "PREFIX", "ROLE", "CREATED", "CREATED BY", "LAST USED", "EXPIRES", "STATUS", "REVOKED AT", "REVOKED BY"
)


@keys.command("list")
@click.argument("organization_id")
def list_keys(organization_id: str) -> None:
    """List the API keys of ORGANIZATION_ID: role, who made them, when, last use, status. Never the keys."""
    from store.models import utcnow
    from store.organizations import check_organization_id, key_status, list_api_keys

    try:
        check_organization_id(organization_id)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="ORGANIZATION_ID") from None
    now = utcnow()
    with database_session() as session:
        try:
            api_keys = list_api_keys(session, organization_id)
        except LookupError as error:
            raise click.ClickException(str(error)) from None
        rows = [
            (
                api_key.id,
                api_key.prefix + "...",
                api_key.role,
                _timestamp(api_key.created_at),
                api_key.created_by or "-",
                _timestamp(api_key.last_used_at),
                _timestamp(api_key.expires_at),
                key_status(api_key.revoked_at is not None, api_key.expires_at, now),
                _timestamp(api_key.revoked_at),
                api_key.revoked_by or "-",
            )
            for api_key in api_keys
        ]
    if not rows:
        click.echo(f"organization {organization_id!r} has no API keys", err=True)
        return
    widths = [max(len(row[i]) for row in (KEY_COLUMNS, *rows)) for i in range(len(KEY_COLUMNS))]
    for row in (KEY_COLUMNS, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key", metavar="KEY_ID_OR_KEY")
@BY_OPTION
def revoke_key(key: str, actor: str) -> None:
    """Revoke an API key, given by its id (key_...) or the key itself (mpk_...).

    Every API process refuses it within 5 seconds. Revoking a revoked key changes nothing.
    """
    from store.organizations import KEY_ID_PREFIX, KEY_PREFIX, revoke_api_key

    if not key.startswith((KEY_ID_PREFIX, KEY_PREFIX)):
        raise click.BadParameter(
            f"give a key id ({KEY_ID_PREFIX}...) or the key itself ({KEY_PREFIX}...)", param_hint="KEY_ID_OR_KEY"
        )
    # Never echo a plaintext key back: name it by id once found, by its kind when not.
    named = key if key.startswith(KEY_ID_PREFIX) else "the given key"
    with database_session() as session:
        try:
            api_key, revoked_now = revoke_api_key(session, key, actor)
        except LookupError:
            raise click.ClickException(f"no API key matches {named}") from None
        when, who = _timestamp(api_key.revoked_at), api_key.revoked_by or "-"
        described = f"{api_key.id} ({api_key.prefix}..., organization {api_key.organization_id})"
    if revoked_now:
        click.echo(f"revoked {described} at {when} by {who}")
    else:
        click.echo(f"{described} was already revoked at {when} by {who}; nothing changed")


@main.group()
def db() -> None:
    """The ModelPulse database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to MODELPULSE_DATABASE_URL (default: SQLite under MODELPULSE_HOME)."""
    from store.migrate import upgrade

    upgrade()
    click.echo("database is up to date", err=True)


def default_key(key_file: Path) -> str:
    """The key of organization ``default``: kept (0600) under MODELPULSE_HOME so `up` can print it again."""
    from store.db import session_scope
    from store.organizations import create_api_key, organization_for_key

    if key_file.exists():
        key = key_file.read_text().strip()
        with session_scope() as session:
            if organization_for_key(session, key) == "default":
                return key
    with session_scope() as session:
        key = create_api_key(session, "default", created_by="modelpulse up")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


@main.command()
@click.option(
    "--roles",
    default="prefect,api,worker,dispatcher",
    show_default=True,
    help="What this machine runs: prefect (server + services; migrates and deploys), api, worker, dispatcher.",
)
def up(roles: str) -> None:
    """Start this machine's roles (Prefect, the API, workers, dispatchers); Ctrl-C stops everything."""
    from stack.supervisor import run
    from stack.topology import TopologyError, parse_roles

    settings = get_settings()
    try:
        chosen = parse_roles(roles)
    except TopologyError as error:
        raise click.BadParameter(str(error), param_hint="--roles") from None
    settings.home.mkdir(parents=True, exist_ok=True)
    sys.exit(run(settings, chosen, lambda: default_key(settings.home.resolve() / "default-api-key")))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("process")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(process: str, args: tuple[str, ...]) -> None:
    """Run one PROCESS in the foreground with this machine's environment (what `up` would start).

    PROCESS is prefect-server, prefect-services, worker, dispatcher or api; ARGS are added to its
    command line (e.g. `modelpulse run worker --name box-1`). Prepare once per installation with
    `modelpulse db upgrade` and `modelpulse prefect-setup`.
    """
    from stack.topology import ROOT, metrics_directory, role_commands, stack_environment

    settings = get_settings()
    commands = role_commands(settings)
    if process not in commands:
        raise click.BadParameter(f"one of {', '.join(commands)}", param_hint="PROCESS")
    argv = [*commands[process], *args]
    metrics_directory(settings).mkdir(parents=True, exist_ok=True)  # the home with it
    env = stack_environment(settings)  # resolves MODELPULSE_HOME against the caller's directory
    os.chdir(ROOT)
    os.execvpe(argv[0], argv, env)


@main.command("prefect-setup")
def prefect_setup() -> None:
    """Prepare a running Prefect server: work pool, block types, the zombie-run automation, deployments
    (`up --roles prefect` runs it; running it again changes nothing)."""
    from prefect.client.orchestration import get_client

    from blocks.connections import register_block_types
    from flows.zombie_runs import ensure_zombie_automation

    settings = get_settings()
    with get_client(sync_client=True) as client:
        ensure_work_pool(client, settings.work_pool)
    register_block_types()
    ensure_zombie_automation(settings.flow_heartbeat_seconds)
    root = Path(__file__).resolve().parent.parent
    if _has_deployments(root / "prefect.yaml"):
        subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=root, check=True
        )


FLOW_RUN_COMMAND = "modelpulse-flow-run"


def ensure_work_pool(client, name: str) -> None:
    """The process work pool, its flow runs started by ``modelpulse-flow-run`` (a fork of this
    machine's warm flow-run server, ``stack.flow_run_forks``) in place of a new ``python -m
    prefect.engine``; a pool made before keeps its other settings and gets the command."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["command"]["default"] = FLOW_RUN_COMMAND
    try:
        client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
        return
    except ObjectAlreadyExists:
        template = client.read_work_pool(name).base_job_template
    command = template.get("variables", {}).get("properties", {}).get("command")
    if command is not None and command.get("default") != FLOW_RUN_COMMAND:
        command["default"] = FLOW_RUN_COMMAND
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))


def _has_deployments(path: Path) -> bool:
    import yaml

    if not path.exists():
        return False
    return bool((yaml.safe_load(path.read_text()) or {}).get("deployments"))


if __name__ == "__main__":
    main()
