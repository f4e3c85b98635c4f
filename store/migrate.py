"""Apply the Alembic migrations programmatically (``modelpulse db upgrade`` and the test fixtures)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.settings import get_settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", (url or get_settings().resolved_database_url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """Bring the database at ``url`` (default: the settings' URL) to the newest schema."""
    url = url or get_settings().resolved_database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def is_current(url: str | None = None) -> bool:
    """Whether the database at ``url`` has every migration applied (a machine that does not migrate checks)."""
    from store.db import get_engine

    url = url or get_settings().resolved_database_url
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    with get_engine(url).connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == heads


def revision(message: str, url: str | None = None) -> None:
    """Autogenerate a new revision from the models (a developer's tool)."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
