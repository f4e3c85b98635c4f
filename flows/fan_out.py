"""``fan-out-event``: one Prefect unit per event, sending to all of its webhooks at once.

It is a background task served by a task worker, not a deployment: a task worker starts a
``.delay()``-ed run in about 0.1 s where a process worker starts a flow run 3-12 s late (measured,
see DESIGN.md and bench/RESULTS.md). The run shows in the Prefect UI with its logs and retries;
the deliveries inside it run concurrently and are recorded in the ModelPulse database.

Serve it with ``python -m flows.fan_out [--limit 50]`` (the ``make up`` stack runs that).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.task_worker import serve

from tasks.webhooks import fanout


@task(
    name="fan-out-event",
    task_run_name="fan-out-{event_id}",
    retries=2,
    retry_delay_seconds=[2, 10],
)
async def fan_out_event(event_id: str) -> dict[str, int]:
    """Send an outbox event to every webhook subscribed to it (a no-op if already sent)."""
    summary = await fanout.fan_out_event(event_id)
    get_run_logger().info(
        "event %s: %d deliveries, %d succeeded, %d to retry, %d failed",
        event_id,
        summary.deliveries,
        summary.succeeded,
        summary.retrying,
        summary.failed,
    )
    return asdict(summary)


def main(argv: list[str] | None = None) -> None:
    """Run the task worker that serves ``fan-out-event`` (blocks until interrupted)."""
    parser = argparse.ArgumentParser(description="Serve the fan-out-event background task.")
    parser.add_argument(
        "--limit",
        type=int,
        default=50,
        help="events fanned out at once; each waits for its slowest receiver (at most the timeout)",
    )
    serve(fan_out_event, limit=parser.parse_args(argv).limit)


if __name__ == "__main__":
    main()
