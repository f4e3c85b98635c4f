"""A shared dependency restarts under load: the Prefect server (API and services), then PostgreSQL.

While one is down the API keeps answering: what needs it gets 503 problem+json with ``Retry-After``
(never a 500, never a hang), the rest works as usual. Once it is back everything recovers by itself,
and nothing accepted is lost: every event reaches its webhook, the export ships every record.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.fakes.elasticsearch import ElasticsearchFake
from tests.production.traffic import (
    CLIENT_TIMEOUT,
    EventPoster,
    answer_of,
    fan_out_records_report,
    log_text,
    prefect_runs_since,
    start_sweep,
    stored_event_ids,
)
from tests.support.polling import wait_until
from tests.webhooks.receivers import Receiver

pytestmark = [pytest.mark.production, pytest.mark.timeout(600)]

RECORDS = 10_000
OUTAGE_SECONDS = 8.0  # longer than a flow run takes to go from Pending to Running


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    # Short leases: a fan-out cut off by an outage is taken over by the next sweep, not minutes later.
    return {
        "MODELPULSE_WEBHOOK_TIMEOUT_SECONDS": "5",
        "MODELPULSE_WEBHOOK_INLINE_RETRY_SECONDS": "2",
        "MODELPULSE_WEBHOOK_LEASE_MARGIN_SECONDS": "5",
    }


def prefect_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def expect_fan_outs_recorded_since(cluster, back: datetime, restart: str) -> None:
    """Prefect records the dispatchers' fan-outs started after ``back`` within 2 minutes. Issue 22
    (open): when it does not, an expected failure saying where the records stopped (events received
    against task runs recorded), not a red run."""
    try:
        wait_until(
            lambda: prefect_runs_since(cluster.prefect_api_url, "task_runs", back, name={"like_": "fan-out-"}),
            120,
            f"fan-out-events runs recorded after {restart}",
            every=1.0,
        )
    except AssertionError as error:
        report = fan_out_records_report(cluster.prefect_api_url, back)
        pytest.xfail(f"issue 22, Prefect's record of fan-outs after a restart: {error}: {report}")


def delivered_ids(receiver: Receiver, secret: str) -> set[str]:
    return {record.verify(secret)["id"] for record in list(receiver.received)}


def test_prefect_server_restart_loses_nothing(cluster):
    a, b = cluster.api(cluster.a), cluster.api(cluster.b)
    with Receiver() as receiver, ElasticsearchFake() as es:
        es.latency = 0.5  # per _bulk page: the export takes a while
        hook = a.post(
            "/organizations/default/webhooks",
            json={"name": "prefect-restart", "url": receiver.url, "events": ["drift.detected"]},
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["signing_secret"]
        logs = [
            {"model": "churn", "features": {"age": n % 90}, "prediction": 0.1 * (n % 10), "request_id": f"p{n}"}
            for n in range(RECORDS)
        ]
        assert a.post("/organizations/default/inference-logs", json={"records": logs}).status_code == 202
        export = b.post(
            "/organizations/default/exports",
            json={
                "name": "prefect-restart",
                "type": "elasticsearch",
                "streams": ["inference_logs"],
                "config": {"url": es.url, "page_size": 200},
                "credentials": {"username": "elastic", "password": "changeme"},
            },
        )
        assert export.status_code == 201, export.text
        export_path = f"/organizations/default/exports/{export.json()['id']}"

        poster = EventPoster(cluster, event_type="drift.detected")
        poster.start()
        try:
            run = b.post(f"{export_path}/trigger")
            assert run.status_code == 202, run.text
            run = run.json()
            wait_until(lambda: len(es.ids("modelpulse-inference-logs")) >= 400, 180, "the export under way", 0.2)

            # A restart: SIGTERM to the Prefect server and its services; `up` starts them again.
            server, services = cluster.a.kill("server start", signal.SIGTERM), cluster.a.kill(
                "stack.prefect_services", signal.SIGTERM
            )
            wait_until(lambda: not prefect_answers(cluster.prefect_api_url), 60, "the Prefect server down", 0.2)
            shipped_at_outage = len(es.ids("modelpulse-inference-logs"))

            # Down: what needs Prefect is refused with 503 and Retry-After, in time; the rest works.
            needs_prefect = [
                answer_of("a", time.monotonic(), lambda: a.post(
                    "/organizations/default/webhooks",
                    json={"name": "while-down", "url": receiver.url, "events": ["model.registered"]},
                    timeout=CLIENT_TIMEOUT,
                )),
                answer_of("b", time.monotonic(), lambda: b.post(f"{export_path}/trigger", timeout=CLIENT_TIMEOUT)),
            ]
            without_prefect = [
                answer_of("b", time.monotonic(), lambda: b.get("/organizations/default/webhooks")),
                answer_of("a", time.monotonic(), lambda: a.get(f"{export_path}/runs")),
            ]
            still_down = not prefect_answers(cluster.prefect_api_url)
            assert all(answer.unavailable for answer in needs_prefect), needs_prefect
            assert [answer.status for answer in without_prefect] == [200, 200], without_prefect

            wait_until(lambda: prefect_answers(cluster.prefect_api_url), 180, "the Prefect server back", 0.5)
            back = datetime.now(UTC)
            assert cluster.a.processes("server start") != server
            assert cluster.a.processes("stack.prefect_services") != services
            # Back: the same API processes reach Prefect again.
            again = a.post(
                "/organizations/default/webhooks",
                json={"name": "after-restart", "url": receiver.url, "events": ["model.registered"]},
            )
            assert again.status_code == 201, again.text
            assert b.delete(f"/organizations/default/webhooks/{again.json()['id']}").status_code == 204
            time.sleep(3)  # events keep coming after the restart too
        finally:
            answers = poster.stop()

        accepted = poster.accepted_ids
        assert [answer for answer in answers if answer.status != 202] == []
        wait_until(lambda: delivered_ids(receiver, secret) >= accepted, 240, "every event delivered", every=1.0)

        finished = wait_until(
            lambda: (r := a.get(run["status_url"]).json())["status"] not in ("scheduled", "running") and r,
            240,
            "the export run to finish",
            every=1.0,
        )
        assert finished["status"] == "completed", finished
        assert len(es.ids("modelpulse-inference-logs")) == RECORDS
        prefect = httpx.Client(base_url=cluster.prefect_api_url, timeout=30)
        state = wait_until(
            lambda: (s := prefect.get(f"/flow_runs/{run['flow_run_id']}").json()["state"]["type"]) in (
                "COMPLETED", "FAILED", "CRASHED", "CANCELLED"
            ) and s,
            120,
            "Prefect to record the export's final state",
            every=1.0,
        )
        assert state == "COMPLETED"
        # The dispatchers' fan-outs show in the Prefect UI again (their Prefect client reconnected).
        # Failed once in a fresh-clone CI run on a loaded 2-core machine (issue 22).
        expect_fan_outs_recorded_since(cluster, back, "the Prefect server's restart")
        assert b.delete(f"/organizations/default/webhooks/{hook.json()['id']}").status_code == 204
    print(
        f"\nPrefect restart: {len(accepted)} events accepted and delivered; export shipped "
        f"{shipped_at_outage}/{RECORDS} before the outage, all after; requests needing Prefect answered 503 in "
        f"{', '.join(f'{answer.seconds:.1f}' for answer in needs_prefect)} s (Prefect still down after: {still_down})"
    )


def test_postgres_restart_loses_no_accepted_event(cluster):
    a = cluster.api(cluster.a)
    kinds = ("flows.fan_out", "stack.prefect_worker start", "gunicorn", "server start", "stack.prefect_services")
    with Receiver() as receiver:
        hook = a.post(
            "/organizations/default/webhooks",
            json={"name": "postgres-restart", "url": receiver.url, "events": ["threshold.breached"]},
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["signing_secret"]
        before = {(m.name, kind): m.processes(kind) for m in cluster.machines for kind in kinds}

        poster = EventPoster(cluster, event_type="threshold.breached", pause=0.05)
        poster.start()
        try:
            wait_until(lambda: len(poster.accepted_ids) >= 10, 60, "events accepted before the outage", 0.1)
            # The hard moment: a retry sweep's flow run on its way (its state changes need the Prefect
            # server, whose database this is; a run stuck Pending would hold the sweep's slot for minutes).
            # Nothing is due for the sweep here, so the test starts one as the sweep gate would.
            recently = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
            assert start_sweep(cluster.prefect_api_url)
            wait_until(
                lambda: prefect_runs_since(
                    cluster.prefect_api_url, "flow_runs", None, flow="retry-due-deliveries",
                    state={"type": {"any_": ["PENDING", "RUNNING"]}}, expected_start_time={"after_": recently},
                ),
                90,
                "a retry sweep starting",
                0.2,
            )
            cluster.postgres.stop()
            stopped = time.monotonic()
            # An outage of a few seconds, long enough for every process to notice.
            wait_until(
                lambda: len(poster.since(stopped)) >= 10 and time.monotonic() - stopped >= OUTAGE_SECONDS,
                120,
                "answers during the outage",
                0.1,
            )
            restarting = time.monotonic()
            cluster.postgres.start()
            restarted = time.monotonic()
            back = datetime.now(UTC)
            wait_until(
                lambda: any(answer.status == 202 for answer in poster.since(restarted)), 120, "a 202 again", 0.2
            )
            time.sleep(5)  # and keeps accepting
        finally:
            answers = poster.stop()

        assert [answer for answer in answers if answer.status != 202 and not answer.unavailable] == []
        during = [answer for answer in answers if stopped <= answer.sent_at < restarting]
        assert during and all(answer.unavailable for answer in during), during
        recovered = min(answer.sent_at for answer in answers if answer.status == 202 and answer.sent_at >= restarting)
        assert all(answer.status == 202 for answer in answers if answer.sent_at >= recovered)

        accepted = poster.accepted_ids
        assert stored_event_ids(cluster.database_url, accepted) == accepted
        wait_until(
            lambda: delivered_ids(receiver, secret) >= accepted, 240, "every accepted event delivered", every=1.0
        )

    # The workers run flows again: a retry sweep started after the restart completes.
    wait_until(lambda: start_sweep(cluster.prefect_api_url), 120, "a retry sweep created after the restart", 2.0)
    wait_until(
        lambda: prefect_runs_since(
            cluster.prefect_api_url, "flow_runs", back, flow="retry-due-deliveries", state={"type": {"any_": ["COMPLETED"]}}
        ),
        180,
        "a retry sweep started after the restart to complete",
        2.0,
    )
    # Every process is running again: the same one (it logged and carried on) or one `up` restarted.
    after = {(m.name, kind): m.processes(kind) for m in cluster.machines for kind in kinds}
    report = []
    for key, pids in before.items():
        if not pids:
            continue  # not a process of this machine
        assert after[key], f"{key} is not running after the restart"
        report.append(f"{key[0]} {key[1]}: {'same process' if after[key] == pids else 'restarted by up'}")
    slowest = max(answer.seconds for answer in during)
    print(
        "\nPostgreSQL restart:",
        f"{len(during)} answers 503 during the outage (slowest {slowest:.2f} s)",
        *report,
        sep="\n  ",
    )
    for machine in cluster.machines:
        dispatcher_log = log_text(machine.home, "webhook-dispatcher-1")
        assert "could not read the outbox" in dispatcher_log, f"{machine.name}: no warning in the dispatcher's log"

    # Prefect (on the same PostgreSQL) records the dispatchers' fan-outs again. Known to fail on a
    # loaded 2-core machine (issue 22: find why, and make it hold): every delivery above arrived, and
    # the task runs ran (the dispatcher's log), but Prefect's task-run recorder has not recorded one.
    # Checked last, so the run still says which way it went.
    expect_fan_outs_recorded_since(cluster, back, "PostgreSQL's restart")
