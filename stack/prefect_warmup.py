"""What every Prefect flow run would otherwise compute for itself, done once in a long-lived process.

A process that starts Prefect clients again and again (the flow-run fork server before it forks; each
forked run inherits the result) pays, per run and for nothing:

- **a TLS context per client**: Prefect's clients, its server-version check and its websocket client
  each build one from the CA file (certifi's or ``SSL_CERT_FILE``'s ~150 certificates parsed, ~30 ms of
  CPU), whether the API is https or not; a small flow run creates six or more;
- **the IANA timezone set**: a deployment read back with a schedule validates its timezone against
  ``pytz.all_timezones_set``, a lazy set built on first use by listing the tz database (~0.1 s);
- **Pydantic schemas left to build on first use**: Prefect's client models with forward references
  are completed the first time one is validated (a flow run, a deployment, a log);
- **modules imported on first use**: the task engine, the task-graph visualization (which imports
  graphviz), the concurrency clients, anyio's asyncio backend, the database driver;
- **SQLAlchemy's mappers**: ModelPulse's ORM classes are configured (their relationships resolved
  across every mapped class) by the first query a run makes, ~10 ms of an export run's CPU.

``warm_up()`` does all of it. It never talks to Prefect: nothing here opens a connection, so a fork
inherits no socket and no lock.
"""

from __future__ import annotations

import importlib
import inspect
import os
import ssl
import sys
from types import SimpleNamespace

# Imported by every flow run on first use, after the engine has started.
FIRST_USE_MODULES = (
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "prefect.concurrency.services",
    "prefect.concurrency._sync",
    "prefect.concurrency._asyncio",
    "prefect._internal.states",
    "anyio._backends._asyncio",
    "anyio.streams.tls",
)
# The modules whose ``ssl.create_default_context`` calls build a Prefect client's TLS context.
TLS_CLIENT_MODULES = (
    "prefect.client.orchestration",
    "prefect._internal.version_checking",
    "prefect._internal.websockets",
)


def warm_up(database_url: str | None = None) -> None:
    """Everything below; ``database_url``: also import the driver of that database."""
    for name in FIRST_USE_MODULES:
        importlib.import_module(name)
    if database_url:
        from sqlalchemy.engine import make_url

        make_url(database_url).get_dialect().import_dbapi()
    share_tls_contexts()
    load_timezone_names()
    complete_client_models()
    configure_orm_mappers()


def share_tls_contexts() -> None:
    """Let Prefect's client modules share one verified TLS context per CA file, built here once.

    Only those modules see the shared contexts, and only the verified kind is shared (Prefect never
    changes it after creating it); the unverified one of ``PREFECT_API_TLS_INSECURE_SKIP_VERIFY`` is
    made without a CA file and passes through, as does anything with ``capath`` or ``cadata``.
    """
    import certifi
    from prefect.settings import PREFECT_API_SSL_CERT_FILE

    contexts: dict[tuple[object, str], ssl.SSLContext] = {}

    def create_default_context(purpose=ssl.Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
        if cafile is None or capath is not None or cadata is not None:
            return ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
        key = (purpose, os.fspath(cafile))
        if key not in contexts:
            contexts[key] = ssl.create_default_context(purpose, cafile=cafile)
        return contexts[key]

    shared = SimpleNamespace(**{**vars(ssl), "create_default_context": create_default_context})
    for name in TLS_CLIENT_MODULES:
        importlib.import_module(name).ssl = shared
    create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())  # what they will ask for


def configure_orm_mappers() -> None:
    """Configure every mapped class imported so far (the store's models), as a first query would."""
    from sqlalchemy.orm import configure_mappers

    configure_mappers()


def load_timezone_names() -> None:
    from prefect.client.schemas.schedules import is_valid_timezone

    is_valid_timezone("UTC")


def complete_client_models() -> None:
    """Build now the schema of every Prefect model left incomplete at import (its forward references are
    resolved at its first validation otherwise)."""
    for model in incomplete_client_models():
        try:
            model.model_rebuild()
        except Exception:  # noqa: BLE001 - a model that cannot be completed here is completed at first use
            pass


def incomplete_client_models() -> list[type]:
    """The Prefect models (of its client side, not its server) whose schema is not built yet."""
    from pydantic import BaseModel

    return [
        value
        for name, module in list(sys.modules.items())
        if name.startswith("prefect.") and not name.startswith("prefect.server.") and module is not None
        for value in list(vars(module).values())
        if inspect.isclass(value) and issubclass(value, BaseModel) and value.__module__ == name
        and not value.__pydantic_complete__
    ]
