"""The ``modelpulse`` command line.

    modelpulse up [--roles R,R]         bring this machine's roles up (default: all; what `make up` runs)
    modelpulse run PROCESS [ARGS]       run one process of a role in the foreground (containers, systemd)
    modelpulse keys create ORG_ID       create an API key (and the organization if missing); prints the key
    modelpulse db upgrade               apply the database migrations
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from store.settings import get_settings


@click.group()
def main() -> None:
    """ModelPulse integrations."""


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.argument("organization_id")
def create_key(organization_id: str) -> None:
    """Create an API key for ORGANIZATION_ID (created if missing); prints only the key."""
    from store.db import session_scope
    from store.migrate import upgrade
    from store.organizations import create_api_key

    upgrade()
    try:
        with session_scope() as session:
            key = create_api_key(session, organization_id)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="ORGANIZATION_ID") from None
    click.echo(key)


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
        key = create_api_key(session, "default")
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
    from api.stack import run
    from api.topology import TopologyError, parse_roles

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
    from api.topology import ROOT, role_commands, stack_environment

    settings = get_settings()
    commands = role_commands(settings)
    if process not in commands:
        raise click.BadParameter(f"one of {', '.join(commands)}", param_hint="PROCESS")
    argv = [*commands[process], *args]
    os.chdir(ROOT)
    os.execvpe(argv[0], argv, stack_environment(settings))


@main.command("prefect-setup")
def prefect_setup() -> None:
    """Prepare a running Prefect server: work pool, block types, the zombie-run automation, deployments
    (`up --roles prefect` runs it; running it again changes nothing)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from blocks.connections import register_block_types
    from flows.zombie_runs import ensure_zombie_automation

    settings = get_settings()
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=settings.work_pool, type="process"))
        except ObjectAlreadyExists:
            pass
    register_block_types()
    ensure_zombie_automation(settings.flow_heartbeat_seconds)
    root = Path(__file__).resolve().parent.parent
    if _has_deployments(root / "prefect.yaml"):
        subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=root, check=True
        )


def _has_deployments(path: Path) -> bool:
    import yaml

    if not path.exists():
        return False
    return bool((yaml.safe_load(path.read_text()) or {}).get("deployments"))


if __name__ == "__main__":
    main()
