"""The layers' import rules (ARCHITECTURE.md), read from the source with ``ast``.

Every import counts: module level, inside functions, under ``if TYPE_CHECKING:``, ``import a.b`` and
``from a import b`` alike; relative imports are resolved first. What ``ast`` cannot see (a module
picked by name at run time, e.g. ``tasks.sinks.sink_module``) is out of scope.

    store    imports none of api, flows, tasks, blocks, stack
    blocks   imports store only (of ours)
    tasks    imports store and blocks (no api, flows, stack)
    flows    imports tasks, blocks, store (no api, stack)
    api      routes import no flows/tasks/blocks/prefect and no other route; services import no routes;
             only api/services touches flows/tasks/blocks/prefect (schemas: the exceptions below)
    stack    imports no Flask and no api (it starts the API as a process: ``api.wsgi:app`` is an argv string)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "flows", "tasks", "blocks", "store", "stack")
ORCHESTRATION = ("flows", "tasks", "blocks", "prefect")  # what only api/services may touch within api

# Schemas validate request bodies against the names the workers accept; these modules are pure
# (constants and a URL check, no Prefect, no I/O at import). Moving the constants down into store/
# means editing tasks/, which the engine work owns this round; until then they are named here.
SCHEMA_EXCEPTIONS = {
    "blocks.egress",  # check_url: the outbound URL policy, a pure function (OutboundURL fields)
    "tasks.drift.methods",  # REQUESTABLE_METHODS
    "tasks.monitoring.thresholds",  # METRICS
    "tasks.webhooks.formats",  # FORMAT_NAMES
}

# At most 12 modules in the api/ root, all HTTP plumbing; everything else lives in routes/, schemas/, services/.
API_ROOT_MODULES = {
    "__init__", "auth", "db", "endpoint", "errors", "key_cache", "openapi", "pagination", "permissions",
    "rate_limits", "standard_json", "wsgi",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. api.routes.exports
    target: str  # what it imports, e.g. api.services.exports (``from a import b`` also yields a.b)
    line: int


def imports_of(module: str, source: str, is_package: bool = False) -> Iterator[Import]:
    """Every import in ``source`` (the text of ``module``), at any depth of the tree."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(module, base, node.lineno)
            for alias in node.names:  # `from api.routes import exports` imports the module api.routes.exports
                yield Import(module, f"{base}.{alias.name}", node.lineno)


def project_imports() -> Iterator[Import]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            module = ".".join(parts[:-1] if is_package else parts)
            yield from imports_of(module, path.read_text(), is_package)


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violation(imp: Import) -> str | None:
    """Why this import breaks a layer rule, or None."""
    src, dst = imp.module, imp.target
    if within(src, "store") and within(dst, "api", "flows", "tasks", "blocks", "stack"):
        return "store is the bottom layer"
    if within(src, "blocks") and within(dst, "api", "flows", "tasks", "stack"):
        return "blocks import only store"
    if within(src, "tasks") and within(dst, "api", "flows", "stack"):
        return "tasks import no api, flows or stack"
    if within(src, "flows") and within(dst, "api", "stack"):
        return "flows import no api or stack"
    if within(src, "stack") and within(dst, "flask", "api"):
        return "stack imports no Flask and no api"
    if within(src, "api.routes") and src != "api.routes":
        if within(dst, *ORCHESTRATION):
            return "routes call api/services for flows, tasks, blocks and Prefect"
        if within(dst, "api.routes") and dst not in ("api.routes", src):
            return "routes import no other route (shared helpers belong in api/services or the api root)"
    if within(src, "api.services") and within(dst, "api.routes"):
        return "services import no routes"
    if within(src, "api") and not within(src, "api.services") and within(dst, *ORCHESTRATION):
        if within(src, "api.schemas") and within(dst, *SCHEMA_EXCEPTIONS):
            return None
        return "within api only api/services touches flows, tasks, blocks and Prefect"
    return None


def test_the_code_keeps_the_layer_rules():
    broken = [f"{i.module}:{i.line} imports {i.target}: {why}" for i in project_imports() if (why := violation(i))]
    assert broken == []


def test_the_api_root_holds_only_http_plumbing():
    modules = {path.stem for path in (ROOT / "api").glob("*.py")}
    assert modules <= API_ROOT_MODULES, sorted(modules - API_ROOT_MODULES)
    assert len(API_ROOT_MODULES) <= 12


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("api.routes.fake", "def view():\n    from flows.export import export_flow\n"),
        ("api.routes.fake", "import prefect.settings\n"),
        ("api.routes.fake", "from api.routes import exports\n"),
        ("api.routes.fake", "from .exports import bp\n"),
        ("api.routes.fake", "from api.routes.integrations import integrations\n"),
        ("api.auth", "if True:\n    from tasks.sinks import sink_module\n"),
        ("api.schemas.fake", "from blocks.connections import load_connection\n"),
        ("api.services.fake", "from api.routes.exports import bp\n"),
        ("store.fake", "from blocks.egress import check_url\n"),
        ("blocks.fake", "import tasks.sinks\n"),
        ("tasks.fake", "from flows.fan_out import dispatcher\n"),
        ("flows.fake", "from api.services.exports import exports\n"),
        ("stack.fake", "def run():\n    import flask\n"),
    ],
)
def test_the_checker_catches_a_violating_import(module, source):
    assert any(violation(i) for i in imports_of(module, source))


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("api.routes.fake", "from api.services.exports import exports\nfrom store.models import Export\n"),
        ("api.routes.fake", "from flask import Blueprint\nfrom api.schemas.common import Page\n"),
        ("api.services.fake", "from flows.export_deployments import start_export_run\nimport prefect\n"),
        ("api.schemas.fake", "from blocks.egress import check_url\nfrom tasks.webhooks.formats import FORMAT_NAMES\n"),
        ("flows.fake", "from tasks.sinks import sink_module\nfrom blocks.connections import load_connection\n"),
        ("stack.fake", "import click\nfrom flows.zombie_runs import ensure_zombie_automation\n"),
    ],
)
def test_the_checker_lets_allowed_imports_through(module, source):
    assert [i for i in imports_of(module, source) if violation(i)] == []
