"""What idle per-origin connection pools cost the dispatcher's garbage collector (issue 22).

In one process with the dispatcher's imports (``flows.fan_out``), a ``Sender`` sends one request to
each of N loopback receivers (``bench/webhook_load.py``'s receiver process), then full collections
(``gc.collect()``, median of 5) are timed: with the N pools open, after the cap closes all but
``MODELPULSE_WEBHOOK_MAX_IDLE_CLIENTS``, and, with ``--freeze``, with the imports frozen first as the
dispatcher does (``gc.freeze()`` at startup). Usage::

    PYTHONPATH=. python bench/sender_gc.py [--receivers 1000] [--freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MODELPULSE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")

import flows.fan_out  # noqa: E402, F401 - the dispatcher's imports: what a full collection scans
from bench.webhook_load import Receivers  # noqa: E402
from tasks.webhooks.sender import Sender  # noqa: E402
from tasks.webhooks.settings import WebhookSettings  # noqa: E402


def full_collection_ms(times: int = 5) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        gc.collect()
        spent.append((time.perf_counter() - started) * 1000)
    return round(sorted(spent)[times // 2], 1)


def report(sender: Sender) -> None:
    print(json.dumps({"open pools": len(sender.open_origins), "objects scanned": len(gc.get_objects()),
                      "full collection ms": full_collection_ms()}), flush=True)


async def main(count: int, freeze: bool) -> None:
    receivers = Receivers.start(count, dict(os.environ))
    try:
        settings = WebhookSettings()
        async with Sender(settings, max_pools=count) as sender:
            gc.collect()
            if freeze:
                gc.freeze()
            report(sender)

            async def post(url: str) -> None:
                async with sender.pool_for(url) as pool:
                    response = await pool.transport.handle_async_request(httpx.Request("POST", url, content=b"{}"))
                    await response.aread()
                    await response.aclose()
                    if response.status_code != 200:
                        raise RuntimeError(f"{url} answered {response.status_code}")

            await asyncio.gather(*(post(url) for url in receivers.urls))
            report(sender)
            sender.max_pools = settings.max_idle_clients
            await post(receivers.urls[0])  # the next send closes what is beyond the cap
            report(sender)
    finally:
        receivers.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() the imports first, as the dispatcher does")
    args = parser.parse_args()
    asyncio.run(main(args.receivers, args.freeze))
