"""One scrape sees the whole machine: the API under gunicorn with two workers and two webhook
dispatchers write their metrics to one directory (as `up` runs them), and `GET /metrics` on either API
worker serves their sum. Counters move by exactly the work done; a process that ends keeps its counts
(its files are folded into the directory's totals)."""

from __future__ import annotations

import os
import re
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from stack.topology import role_commands
from store.db import session_scope
from store.organizations import create_api_key
from store.settings import Settings
from tests.conftest import ROOT
from tests.support.metrics import Samples, samples_of, value
from tests.support.polling import wait_until
from tests.support.servers import free_port, start_process, stop_process, wait_until_ready
from tests.webhooks.receivers import Receiver

EVENTS = 12
WEBHOOKS = 3


def scrape(api: str) -> Samples:
    response = httpx.get(f"{api}/metrics", headers={"Connection": "close"}, timeout=30)
    assert response.status_code == 200, response.text
    return samples_of(response.text)



def test_one_scrape_sums_two_api_workers_and_two_dispatchers(prefect_server, sqlite_url, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    settings = Settings(home=tmp_path / "home", database_url=sqlite_url, api_port=port)
    env = os.environ | {
        "MODELPULSE_HOME": str(tmp_path / "home"),
        "MODELPULSE_DATABASE_URL": sqlite_url,
        "MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONPATH": str(ROOT),
    }
    with session_scope(sqlite_url) as session:
        key = create_api_key(session, "acme")
    headers = {"Authorization": f"Bearer {key}"}
    api = f"http://127.0.0.1:{port}"
    access_log = tmp_path / "access.log"
    argv = [*role_commands(settings)["api"], "--access-logfile", str(access_log), "--access-logformat", "%(p)s"]
    assert argv[argv.index("--workers") + 1] == "2"
    processes = [start_process(argv, tmp_path / "gunicorn.log", env=env, cwd=ROOT)]
    try:
        wait_until_ready(f"{api}/health", processes[0], timeout=120)
        dispatchers = [
            start_process([sys.executable, "-m", "flows.fan_out"], tmp_path / f"dispatcher-{i}.log", env=env, cwd=ROOT)
            for i in range(2)
        ]
        processes += dispatchers
        with Receiver() as receiver, httpx.Client(base_url=api, headers=headers, timeout=30) as client:
            for i in range(WEBHOOKS):
                created = client.post(
                    "/organizations/acme/webhooks",
                    json={"name": f"hook-{i}", "url": f"{receiver.url}/{i}", "events": ["drift.detected"]},
                )
                assert created.status_code == 201, created.text

            def publish(i: int) -> int:
                # A new connection each, so that either API worker may accept it.
                return httpx.post(
                    f"{api}/organizations/acme/events",
                    json={"type": "drift.detected", "data": {"model": f"m{i}", "metric": "psi", "value": 0.4}},
                    headers=headers | {"Connection": "close"},
                    timeout=30,
                ).status_code

            published = 0

            def both_workers_served() -> bool:
                """Publish a round of events, four at once; whether both API workers have served some. The
                kernel gives each connection to whichever worker accepts first, and one may win many
                rounds in a row: rounds go on until both have served (at least ``EVENTS`` events)."""
                nonlocal published
                with ThreadPoolExecutor(max_workers=4) as pool:
                    assert list(pool.map(publish, range(published, published + 4))) == [202] * 4
                published += 4
                served = set(re.findall(r"^<(\d+)>$", access_log.read_text(), re.MULTILINE))
                return published >= EVENTS and len(served) == 2

            wait_until(both_workers_served, 120, "both API workers to serve requests", every=0)
            events = published
            wait_until(lambda: len(receiver.received) >= events * WEBHOOKS, 120, "every delivery to arrive")
            files = {path.name for path in metrics_dir.glob("*.db")}
            # Whichever dispatcher won each claim counted its attempts (one may have won them all).
            counting = [process for process in dispatchers if f"counter_{process.pid}.db" in files]
            assert counting, files

            def settled() -> dict:
                samples = scrape(api)
                attempts = value(samples, "modelpulse_webhook_attempts_total", organization="acme", outcome="delivered")
                return samples if attempts == events * WEBHOOKS else {}

            samples = wait_until(settled, 30, "the attempts counted")
            assert len(receiver.received) == events * WEBHOOKS
            accepted = value(samples, "modelpulse_events_accepted_total", organization="acme", type="drift.detected")
            assert accepted == events
            assert value(samples, "modelpulse_webhook_event_to_attempt_seconds_count") == events * WEBHOOKS
            assert value(samples, "modelpulse_webhook_event_to_attempt_seconds_bucket", le="+Inf") == events * WEBHOOKS
            route = "/organizations/<organization_id>/events"
            assert value(samples, "modelpulse_http_requests_total", method="POST", route=route, status="202") == events
            assert value(samples, "modelpulse_outbox_pending") == 0
            assert value(samples, "modelpulse_webhook_deliveries_pending") == 0

            # A dispatcher ends: its counts stay in the totals, its files are folded away.
            ended = counting[0]
            ended.send_signal(signal.SIGKILL)
            ended.wait(timeout=30)
            after = scrape(api)
            for name, labels in samples:
                if name.endswith(("_total", "_count", "_bucket", "_sum")) and "http_request" not in name:
                    assert after[(name, labels)] == samples[(name, labels)], name
            files = {path.name for path in metrics_dir.glob("*.db")}
            assert f"counter_{ended.pid}.db" not in files and "counter_ended.db" in files, files
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                stop_process(process)
    _no_stray_files(metrics_dir)


def _no_stray_files(metrics_dir: Path) -> None:
    # Only per-process files and the folded totals: nothing half-written is left behind.
    for path in metrics_dir.iterdir():
        kept = path.name == ".compact.lock" or re.fullmatch(r"[a-z]+_(\d+|ended)\.db|gauge_[a-z]+_\d+\.db", path.name)
        assert kept, path
