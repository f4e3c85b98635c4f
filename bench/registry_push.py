"""Registry push benchmark: a version created on MLflow -> ``model.registered`` at a ModelPulse webhook.

The whole path runs for real on loopback: ``mlflow server`` (SQLite backend, webhooks allowed on
loopback http) posts its signed ``model_version.created`` webhook to ModelPulse's API under gunicorn
(``/inbound/mlflow/<integration id>``), which records the version and writes ``model.registered`` to
the outbox in one transaction; the webhook dispatcher (``python -m flows.fan_out``) fans it out to a
receiver in this process. For each of N versions (default 50, created one at a time, ``--gap``
seconds apart) it measures, from just before the create call to MLflow:

- recorded: the version's row in ``monitored_models`` (the inbound route has answered), by its
  ``registered_at`` (same machine clock);
- delivered: the ``model.registered`` webhook at the receiver.

The baseline is the poll this replaces: a version waits for the next ``registry-sync`` of its
integration, uniformly up to ``config.sync_interval_seconds`` (900 s by default, 60 s at least) plus
the sync's own run; the table prints that expectation beside the measured push. Usage::

    PYTHONPATH=. python bench/registry_push.py [--versions 50] [--gap 0.5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_fanout import ROOT  # noqa: E402
from webhook_fanout import _environment as fanout_environment  # noqa: E402


class Arrivals:
    """A webhook receiver on 127.0.0.1 noting when each version's ``model.registered`` arrived."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.time()
                data = json.loads(body).get("data", {})
                arrivals.at.setdefault(str(data.get("version")), now)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _environment(workdir: Path) -> dict[str, str]:
    """The webhook benchmarks' environment, plus the public URL MLflow calls back and its port."""
    from tests.support.servers import free_port

    env = fanout_environment(workdir)
    extra = {
        "MODELPULSE_PUBLIC_URL": f"http://127.0.0.1:{env['MODELPULSE_API_PORT']}",
        "BENCH_MLFLOW_PORT": str(free_port()),
    }
    os.environ.update(extra)
    return env | extra


def _mlflow_env(env: dict[str, str]) -> dict[str, str]:
    return env | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "0",  # the default 60 s would delay only the first deliveries
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two version creations")
    parser.add_argument("--sync-interval", type=int, default=900, help="the poll's interval, for the baseline")
    args = parser.parse_args()

    import httpx

    from tests.support.servers import start_process, stop_process, wait_until_ready

    workdir = Path(tempfile.mkdtemp(prefix="modelpulse-push-bench-"))
    print(f"logs in {workdir}", flush=True)
    env = _environment(workdir)
    processes: list[subprocess.Popen] = []

    def start(name: str, argv: list[str], ready_url: str | None, process_env: dict[str, str] | None = None) -> None:
        process = start_process(argv, workdir / f"{name}.log", env=process_env or env, cwd=ROOT)
        processes.append(process)
        if ready_url:
            wait_until_ready(ready_url, process, timeout=300)

    api = env["MODELPULSE_PUBLIC_URL"]
    mlflow = f"http://127.0.0.1:{env['BENCH_MLFLOW_PORT']}"
    arrivals = Arrivals()
    try:
        start(
            "prefect-server",
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", env["PREFECT_SERVER_API_PORT"]],
            env["PREFECT_API_URL"] + "/health",
        )  # fmt: skip
        start(
            "mlflow",
            [str(Path(sys.executable).with_name("mlflow")), "server",
             "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
             "--default-artifact-root", str(workdir / "artifacts"),
             "--host", "127.0.0.1", "--port", env["BENCH_MLFLOW_PORT"], "--workers", "1"],
            f"{mlflow}/health",
            _mlflow_env(env),
        )  # fmt: skip
        from blocks.connections import register_block_types
        from store.db import session_scope
        from store.migrate import upgrade
        from store.models import Integration, MonitoredModel
        from store.organizations import create_api_key
        from store.registry import record_model_version

        upgrade()
        register_block_types()
        with session_scope() as session:
            key = create_api_key(session, "bench-push")
        start(
            "api",
            [sys.executable, "-m", "gunicorn", "--no-control-socket", "api.wsgi:app",
             "--bind", api.removeprefix("http://"), "--workers", "2", "--threads", "4"],
            f"{api}/health",
        )  # fmt: skip
        start("webhook-dispatcher", [sys.executable, "-m", "flows.fan_out"], None)

        headers = {"Authorization": f"Bearer {key}"}
        base = f"{api}/organizations/bench-push"
        webhook = httpx.post(
            f"{base}/webhooks",
            json={"name": "registry", "url": arrivals.url, "events": ["model.registered"]},
            headers=headers,
            timeout=30,
        )
        webhook.raise_for_status()
        integration = httpx.post(
            f"{base}/integrations",
            json={"name": "mlflow", "type": "mlflow", "config": {"tracking_uri": mlflow, "push_events": True}},
            headers=headers,
            timeout=30,
        )
        integration.raise_for_status()
        integration_id = integration.json()["id"]
        rest = httpx.Client(base_url=f"{mlflow}/api/2.0/mlflow", timeout=30)
        rest.post("/registered-models/create", json={"name": "churn"}).raise_for_status()
        rest.post("/model-versions/create", json={"name": "churn", "source": "s3://b/1"}).raise_for_status()
        with session_scope() as session:  # monitored, as registering version 1 through ModelPulse makes it
            record_model_version(
                session, session.get(Integration, integration_id), "churn", "1", "models:/churn/1", "api"
            )

        created: dict[str, float] = {}
        for index in range(args.versions):
            started = time.time()
            answer = rest.post("/model-versions/create", json={"name": "churn", "source": f"s3://b/{index + 2}"})
            answer.raise_for_status()
            created[answer.json()["model_version"]["version"]] = started
            time.sleep(args.gap)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not set(created) <= set(arrivals.at):
            time.sleep(0.1)
        with session_scope() as session:
            rows = session.query(MonitoredModel).filter(MonitoredModel.integration_id == integration_id).all()
            recorded = {row.version: (row.registered_at.timestamp(), row.source) for row in rows}
    finally:
        for process in reversed(processes):
            stop_process(process)
        arrivals.server.shutdown()

    pushed = [version for version in created if recorded.get(version, (0, ""))[1] == "push"]
    record_ms = [1000 * (recorded[v][0] - created[v]) for v in pushed]
    deliver_ms = [1000 * (arrivals.at[v] - created[v]) for v in created if v in arrivals.at]
    interval = args.sync_interval
    print(f"\nRegistry push, {os.cpu_count()} CPUs, MLflow + Prefect on SQLite, all on loopback\n")
    print("| measurement | push (measured) | poll (registry-sync, expected) | goal |")
    print("|---|---|---|---|")
    print(
        f"| MLflow version created -> recorded by ModelPulse ({len(record_ms)}/{len(created)} by push) | "
        f"p50 {_percentile(record_ms, 0.5):.0f} ms, p99 {_percentile(record_ms, 0.99):.0f} ms, "
        f"max {max(record_ms):.0f} ms | up to {interval} s (p50 ~{interval // 2} s) | - |"
    )
    print(
        f"| MLflow version created -> model.registered at a ModelPulse webhook ({len(deliver_ms)}/{len(created)}) | "
        f"p50 {_percentile(deliver_ms, 0.5):.0f} ms, p99 {_percentile(deliver_ms, 0.99):.0f} ms, "
        f"max {max(deliver_ms):.0f} ms | up to {interval} s + fan-out | p50 < 2 s |"
    )
    print("\nraw:", json.dumps({"record_ms": record_ms, "deliver_ms": deliver_ms}))


if __name__ == "__main__":
    main()
