"""The machine's process tree, read from /proc: what a stack started, and whether any of it is left."""

from __future__ import annotations

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
