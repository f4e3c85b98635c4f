"""The capacity bench's CPU accounting: which process kind each of ``up``'s processes is, and that a
process tree's CPU keeps the time of children that already exited (a flow run, a database backend)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.capacity import kind_of
from bench.process_cpu import tree_cpu_seconds
from stack.topology import role_commands
from store.settings import Settings


def test_every_process_up_runs_has_a_kind():
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/0", prefect_database_url="postgresql+asyncpg://prefect@127.0.0.1/prefect"
    )
    kinds = {name: kind_of(" ".join(argv)) for name, argv in role_commands(settings).items()}
    assert kinds == {
        "prefect-server": "prefect api",
        "prefect-services": "prefect services",
        "worker": "worker",
        "flow-run-forks": "worker",  # the worker's runs are forks of it: their CPU is the worker's
        "dispatcher": "dispatcher",
        "api": "api",
    }
    # The one-shot preparation steps are no process kind: they end before anything is measured.
    assert kind_of(f"{sys.executable} -m stack.cli prefect-setup") is None
    assert kind_of(f"{sys.executable} -m stack.cli db upgrade") is None


def test_a_tree_keeps_the_cpu_of_children_that_exited():
    burn = "import time\nwhile time.process_time() < 0.5:\n    pass\n"
    tree_before, own_before = tree_cpu_seconds(os.getpid()), sum(os.times()[:2])
    subprocess.run([sys.executable, "-c", burn], check=True)  # exits, and is reaped, before we look
    tree_used = tree_cpu_seconds(os.getpid()) - tree_before
    own_used = sum(os.times()[:2]) - own_before
    # The child's 0.5 s; /proc counts in clock ticks and splits user/system time by estimate, hence
    # the margin (without the reaped child's time the difference is about 0).
    assert tree_used - own_used >= 0.4
