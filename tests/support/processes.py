"""The machine's process tree, read from /proc: what a stack started, and whether any of it is left;
and a started process's output, read until it says something."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def _process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry.name)] = (int(stat[1]), stat[0], cmdline)
    return table


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every process below ``pid``, with its command line."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append((child, table[child][2]))
            todo.append(child)
    return found


def still_running(pids: Iterable[int]) -> list[tuple[int, str]]:
    """Those of ``pids`` still running (zombies, dead but not yet reaped, do not count)."""
    table = _process_table()
    return [(pid, table[pid][2]) for pid in pids if pid in table and table[pid][1] != "Z"]


def read_output_until(
    process: subprocess.Popen, pattern: str, timeout: float, output: str = ""
) -> tuple[re.Match | None, str]:
    """Read the process's output until ``pattern`` shows up in ``output`` plus what was read.

    Returns the match (``None`` when the process closed its output, exited, or ``timeout`` passed)
    and all the output so far. Reads the pipe's file descriptor directly: a buffered ``readline``
    after ``select`` can pull several lines into Python's buffer, and ``select`` then waits on an
    empty descriptor for lines already read.
    """
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break  # the process closed its output
            output += chunk.decode(errors="replace")
            match = re.search(pattern, output)
            if match:
                return match, output
        elif process.poll() is not None:
            break
    return None, output
