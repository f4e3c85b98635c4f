"""What the fault tests send while something breaks, and what they check of every answer.

``EventPoster`` posts events through every machine's API in turn, one at a time, until stopped, and
keeps every answer (or the lack of one) with when it was sent: the tests then check what the API said
before, during and after an outage.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from store.models import Delivery, DeliveryAttempt, Event
from store.settings import Settings
from tests.support.cluster import Cluster

# A hang shows as no answer within this long (the API's own bounds are seconds).
CLIENT_TIMEOUT = 30.0


@dataclass
class Answer:
    """One request's outcome: the response, or the transport error that came instead."""

    machine: str
    sent_at: float  # time.monotonic()
    status: int | None
    content_type: str = ""
    retry_after: str | None = None
    body: Any = None
    error: str | None = None
    seconds: float = 0.0  # how long the answer took (reported, never asserted)

    @property
    def unavailable(self) -> bool:
        """503 problem+json with a ``Retry-After`` of whole seconds: what an outage must look like."""
        return (
            self.status == 503
            and self.content_type.startswith("application/problem+json")
            and (self.retry_after or "").isdigit()
            and isinstance(self.body, dict)
            and self.body.get("status") == 503
        )


def answer_of(machine: str, sent_at: float, send) -> Answer:  # noqa: ANN001 - a zero-argument request
    """Run ``send()`` and record what came back (a transport error or timeout is an answer too)."""
    try:
        response = send()
    except httpx.HTTPError as error:
        return Answer(
            machine, sent_at, None, error=f"{type(error).__name__}: {error}", seconds=time.monotonic() - sent_at
        )
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return Answer(
        machine,
        sent_at,
        response.status_code,
        response.headers.get("content-type", ""),
        response.headers.get("retry-after"),
        body,
        seconds=time.monotonic() - sent_at,
    )


def event_body(event_type: str, **data: Any) -> dict[str, Any]:
    """A ``POST .../events`` body whose ``data`` fits its type's schema, plus ``data``."""
    required = {
        "drift.detected": {"model": "churn"},
        "threshold.breached": {"model": "churn", "metric": "latency_ms.p95", "operator": ">", "threshold": 250.0,
                               "value": 300.0},
    }
    return {"type": event_type, "data": {**required[event_type], **data}}


class EventPoster(threading.Thread):
    """Posts events of one type through each machine's API in turn, ``pause`` apart, until ``stop()``."""

    def __init__(self, cluster: Cluster, event_type: str, pause: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.event_type = event_type
        self.pause = pause
        self.answers: list[Answer] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        clients = [(machine.name, self.cluster.api(machine)) for machine in self.cluster.machines]
        for client in clients:
            client[1].timeout = httpx.Timeout(CLIENT_TIMEOUT)
        n = 0
        while not self._stopping.is_set():
            name, client = clients[n % len(clients)]
            sent_at = time.monotonic()
            body = event_body(self.event_type, n=n, machine=name)
            self.answers.append(answer_of(name, sent_at, lambda: client.post("/organizations/default/events", json=body)))
            n += 1
            self._stopping.wait(self.pause)
        for _, client in clients:
            client.close()

    def stop(self) -> list[Answer]:
        self._stopping.set()
        self.join(CLIENT_TIMEOUT + 10)
        return self.answers

    def since(self, moment: float) -> list[Answer]:
        return [answer for answer in list(self.answers) if answer.sent_at >= moment]

    @property
    def accepted_ids(self) -> set[str]:
        return {answer.body["id"] for answer in list(self.answers) if answer.status == 202}


def sweep_interval_seconds() -> float:
    """How long work due for the ``retry-due-deliveries`` sweep can wait for a run: the sweep gate
    (``stack/sweep_gate.py``) checks every ``MODELPULSE_SWEEP_CHECK_SECONDS`` and starts each sweep at
    most once a minute."""
    return 60.0 + Settings.model_fields["sweep_check_seconds"].default


def start_sweep(prefect_api_url: str, deployment: str = "retry-due-deliveries/retry-due-deliveries") -> str | None:
    """Create a run of a sweep's deployment now, as the sweep gate does when the sweep has work; its id, or
    ``None`` while Prefect cannot answer."""
    try:
        with httpx.Client(base_url=prefect_api_url, timeout=CLIENT_TIMEOUT) as prefect:
            found = prefect.get(f"/deployments/name/{deployment}")
            found.raise_for_status()
            run = prefect.post(f"/deployments/{found.json()['id']}/create_flow_run", json={})
            run.raise_for_status()
            return run.json()["id"]
    except httpx.HTTPError:
        return None


@dataclass
class DeliveryTiming:
    delivery_id: str
    event_id: str
    status: str
    created_at: Any
    first_attempt_at: Any
    first_trigger: str | None

    @property
    def pending_seconds(self) -> float | None:
        if self.first_attempt_at is None:
            return None
        return (self.first_attempt_at - self.created_at).total_seconds()


def delivery_timings(database_url: str) -> list[DeliveryTiming]:
    """Every delivery with when it was created and when its first recorded attempt was made."""
    engine = create_engine(database_url)
    first = (
        select(DeliveryAttempt.delivery_id, func.min(DeliveryAttempt.id).label("attempt_id"))
        .group_by(DeliveryAttempt.delivery_id)
        .subquery()
    )
    query = (
        select(Delivery, DeliveryAttempt)
        .outerjoin(first, first.c.delivery_id == Delivery.id)
        .outerjoin(DeliveryAttempt, DeliveryAttempt.id == first.c.attempt_id)
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                query.with_only_columns(
                    Delivery.id, Delivery.event_id, Delivery.status, Delivery.created_at,
                    DeliveryAttempt.attempted_at, DeliveryAttempt.trigger,
                )
            ).all()
    finally:
        engine.dispose()
    return [DeliveryTiming(*row) for row in rows]


def stored_event_ids(database_url: str, event_ids: set[str]) -> set[str]:
    """Which of ``event_ids`` are in the events table."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found = set()
            ids = sorted(event_ids)
            for start in range(0, len(ids), 1000):
                found |= set(connection.scalars(select(Event.id).where(Event.id.in_(ids[start : start + 1000]))))
            return found
    finally:
        engine.dispose()


def prefect_runs_since(
    prefect_api_url: str, kind: str, since: datetime | None, flow: str | None = None, **filters: Any
) -> list[dict[str, Any]]:
    """Prefect flow or task runs (``kind``: ``flow_runs`` | ``task_runs``) started after ``since`` (any
    time: ``None``), optionally of the flow named ``flow``, matching Prefect's run ``filters``
    (``name``, ``state``)."""
    body: dict[str, Any] = {kind: dict(filters)}
    if since is not None:
        body[kind]["start_time"] = {"after_": since.isoformat()}
    if flow:
        body["flows"] = {"name": {"any_": [flow]}}
    with httpx.Client(base_url=prefect_api_url, timeout=CLIENT_TIMEOUT) as prefect:
        response = prefect.post(f"/{kind}/filter", json=body)
    return response.json() if response.status_code == 200 else []


def log_text(home: Path, name: str) -> str:
    """A process's log under a machine's home (``logs/<name>.log``), or '' when there is none."""
    path = home / "logs" / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def fan_out_records_report(prefect_api_url: str, since: datetime) -> str:
    """Where the dispatchers' fan-outs since ``since`` got to in Prefect, for a failure message: the
    task-run events Prefect's event store holds (sent, received, persisted) against the task runs its
    task-run recorder made of them, and the newest fan-out runs it has at all."""
    try:
        return _fan_out_records_report(prefect_api_url, since)
    except Exception as error:  # noqa: BLE001 - a report for a failure message must not replace it
        return f"(could not ask Prefect: {type(error).__name__}: {error})"


def _fan_out_records_report(prefect_api_url: str, since: datetime) -> str:
    with httpx.Client(base_url=prefect_api_url, timeout=CLIENT_TIMEOUT) as prefect:
        events = prefect.post(
            "/events/filter",
            json={
                "filter": {
                    "occurred": {"since": since.isoformat()},
                    "event": {"prefix": ["prefect.task-run."]},
                },
                "limit": 50,
            },
        )
        newest = prefect.post(
            "/task_runs/filter",
            json={"task_runs": {"name": {"like_": "fan-out-"}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 3},
        )
    if events.status_code == 200:
        body = events.json()
        names = sorted({event["resource"].get("prefect.resource.name", "?") for event in body["events"]})
        events_said = f"{body['total']} task-run events since then in Prefect's event store (runs: {names[:5]})"
    else:
        events_said = f"events/filter answered {events.status_code}"
    runs_said = (
        [(run["name"], run["start_time"], run["state_type"]) for run in newest.json()]
        if newest.status_code == 200
        else f"task_runs/filter answered {newest.status_code}"
    )
    return f"{events_said}; the newest fan-out task runs Prefect recorded: {runs_said}"
