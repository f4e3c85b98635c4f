"""``python -m stack.prefect_worker start --pool NAME ...``: Prefect's process worker, as ``prefect worker
start ...`` runs it, with one difference: the Prefect clients it creates share one TLS context.

The worker creates a client for each poll, each run it submits and each cancellation check, and each
builds a TLS context from the CA file (~30 ms of CPU) whether the API is https or not: in a py-spy
profile of an idle worker, 40 % of its samples. ``stack.prefect_warmup.share_tls_contexts`` builds it
once; everything else is Prefect's CLI, arguments and all.
"""

from __future__ import annotations

import sys


def main() -> None:
    from stack.prefect_warmup import share_tls_contexts

    share_tls_contexts()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "worker", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
