"""A flow run imports only what it needs (issue 22): each flow entrypoint, and each sink an export run
loads, is imported in a fresh interpreter and the heavy packages it must not load are checked.

A process worker starts every flow run as a fresh ``python -m prefect.engine`` that imports the
deployment's entrypoint module; whatever that module imports at its top, every run pays for, whether it
uses it or not (``bench/flow_imports.py`` times it). Per-type SDKs are imported on first use
(``blocks.connections``, ``tasks.sinks.sink_module``, ``tasks.registries.connector_type``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import yaml

from blocks.connections import _CONNECTIONS, _LEGACY_BLOCK_TYPES

ROOT = Path(__file__).resolve().parent.parent

# What no entrypoint imports at its top, and who needs it: the registry and sink SDKs (one type's runs
# each), pyarrow (the Elasticsearch client), numpy and scipy (a drift check that measures; a latency or
# prediction threshold), urllib3 and requests (the urllib3-based clients: Elasticsearch, Datadog, AWS,
# MLflow, Vertex AI; webhooks and Splunk speak httpx).
NOT_AT_START = (
    "mlflow",
    "boto3",
    "botocore",
    "prefect_aws",
    "google.cloud.aiplatform",
    "prefect_gcp",
    "datadog_api_client",
    "elasticsearch",
    "pyarrow",
    "numpy",
    "scipy",
    "urllib3",
    "requests",
)


def entrypoint_modules() -> list[str]:
    """Every deployment's entrypoint module in prefect.yaml, and the webhook dispatcher (``python -m``)."""
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    modules = [d["entrypoint"].partition(":")[0].removesuffix(".py").replace("/", ".") for d in deployments]
    return sorted({*modules, "flows.fan_out"})


def loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` are in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh_interpreter():
    """``loaded_after`` (its own fixture so that tests/conftest.py counts these tests slow: each starts
    an interpreter that imports Prefect, ~1.5 CPU-s)."""
    return loaded_after


def test_every_deployment_is_checked():
    modules = set(entrypoint_modules())
    assert len(modules) >= 9  # 8 deployments in prefect.yaml + the dispatcher
    assert {"flows.export", "flows.fan_out", "flows.retry_deliveries", "flows.run_monitors"} <= modules


@pytest.mark.parametrize("module", entrypoint_modules())
def test_a_flow_entrypoint_imports_no_library_only_some_runs_need(fresh_interpreter, module):
    assert fresh_interpreter(f"import {module}", NOT_AT_START) == []


# An export run of one type loads its sink and block (besides flows.export, checked above), and nothing of
# the other types: what each loads of NOT_AT_START (the Elasticsearch client itself imports requests, and
# pyarrow and numpy for its serializers).
SINK_SDKS = {
    "elasticsearch": ("elasticsearch", "urllib3", "requests", "pyarrow", "numpy"),
    "splunk": (),  # httpx, which Prefect loads anyway
    "datadog": ("datadog_api_client", "urllib3"),
}


@pytest.mark.parametrize("export_type", sorted(SINK_SDKS))
def test_an_export_run_loads_only_its_own_sink(fresh_interpreter, export_type):
    code = (
        "from blocks.connections import connection_kind\n"
        "from tasks.sinks import sink_module\n"
        f"sink_module({export_type!r}); connection_kind('export', {export_type!r})"
    )
    others = tuple(sorted({*NOT_AT_START} - {*SINK_SDKS[export_type]}))
    assert fresh_interpreter(code, others) == []


def test_deleting_a_record_imports_no_block_class(fresh_interpreter):
    """``delete_connection`` tries every block type of the kind by slug; finding the slugs imports nothing
    (``blocks.gcp`` alone imports the Vertex AI SDK, ~3 s)."""
    code = (
        "import blocks.connections as connections\n"
        "deleted = []\n"
        "connections._delete_documents = lambda name, slugs: deleted.append((name, sorted(slugs)))\n"
        "connections.delete_connection('integration', 'int_1')\n"
        "assert deleted == [('modelpulse-integration-int-1', "
        "['aws-credentials', 'gcp-credentials', 'modelpulse-mlflow-connection', 'modelpulse-sagemaker-connection'])]"
        ", deleted"
    )
    assert fresh_interpreter(code, ("blocks.mlflow", "blocks.aws", "blocks.gcp", *NOT_AT_START)) == []


@pytest.mark.parametrize("entry", [*_CONNECTIONS.values(), *_LEGACY_BLOCK_TYPES.values()], ids=lambda e: e.class_name)
def test_the_table_holds_each_block_classs_own_slug(entry):
    assert entry.slug == getattr(import_module(entry.module), entry.class_name).get_block_type_slug()


def test_an_api_worker_imports_no_registry_or_sink_sdk(fresh_interpreter):
    """Every gunicorn worker imports ``api.wsgi``; the MLflow webhook check and the block classes it names
    must not bring ``mlflow`` (~1.3 s of CPU and ~100 MB with scipy, pandas and pyarrow) into a worker
    that serves no MLflow call. numpy stays: the drift and threshold schemas check their methods."""
    assert fresh_interpreter("import api.wsgi", tuple(m for m in NOT_AT_START if m != "numpy")) == []
