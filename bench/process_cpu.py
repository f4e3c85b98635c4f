"""CPU time of process trees, read from /proc (Linux), for the benchmarks' per-process figures.

A tree's CPU is the user + system time of every live process in it plus the time of the children
each of them has already reaped (``cutime`` + ``cstime``): a flow-run subprocess or a PostgreSQL
backend that ended during a measurement still counts, once, through the parent that waited for it.

Example:
    ```python
    before = tree_cpu_seconds(pid)
    ...  # the measured phase
    used = tree_cpu_seconds(pid) - before
    ```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessEntry:
    parent: int
    cpu_seconds: float  # its own user + system time, plus that of the children it reaped
    command: str


def process_table() -> dict[int, ProcessEntry]:
    """Every process now: pid -> parent, CPU seconds, command line."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, ... utime (12th), stime, cutime, cstime (stat(5), 1-based 14-17).
        cpu = sum(int(value) for value in fields[11:15]) / TICK
        table[int(entry.name)] = ProcessEntry(int(fields[1]), cpu, command)
    return table


def children_of(table: dict[int, ProcessEntry]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, entry in table.items():
        children.setdefault(entry.parent, []).append(pid)
    return children


def tree(pid: int, table: dict[int, ProcessEntry]) -> list[int]:
    """``pid`` and every live process below it."""
    children = children_of(table)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in table:
            found.append(current)
        todo += children.get(current, [])
    return found


def tree_cpu_seconds(pid: int, table: dict[int, ProcessEntry] | None = None) -> float:
    """CPU seconds used so far by ``pid``'s tree (live processes and the children they reaped)."""
    table = table if table is not None else process_table()
    return sum(table[member].cpu_seconds for member in tree(pid, table))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores; not idle, not waiting on I/O), from
    /proc/stat: what every process, ours or not, used."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK  # user nice system idle iowait irq softirq steal (guest is in user)

