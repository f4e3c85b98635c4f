"""What a flow run pays to import its entrypoint: wall and CPU time of ``python -c "import <module>"``.

A process worker starts every flow run as a fresh ``python -m prefect.engine``, which imports the
deployment's entrypoint module and everything it pulls in before the flow's first line runs. This
times that import, in a fresh interpreter per sample, for every entrypoint in ``prefect.yaml`` plus
the webhook dispatcher (``python -m flows.fan_out``), next to two floors: ``python -c pass`` and
``import prefect`` (what any flow run pays). It also lists which heavy third-party packages each
import leaves in ``sys.modules`` (one more fresh interpreter per module).

    PYTHONPATH=. .venv/bin/python bench/flow_imports.py [--runs 5] [--against DIR]

Wall is the median of the runs' elapsed times; CPU is the median of each child's user + system time
(``RUSAGE_CHILDREN`` deltas, runs are sequential). On a shared machine wall moves with the load
average (printed); CPU moves much less. ``--against DIR`` times another checkout too (e.g. an older
commit: ``git archive <commit> | tar -x -C DIR``), alternating its runs with this checkout's so both
columns see the same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DISPATCHER = "flows.fan_out"  # not a deployment: `python -m flows.fan_out` (ARCHITECTURE.md, an event's path)
# Third-party packages worth knowing about at a flow run's start: the per-type SDKs, then the shared ones.
HEAVY = (
    "mlflow",
    "boto3",
    "botocore",
    "prefect_aws",
    "google.cloud.aiplatform",
    "prefect_gcp",
    "datadog_api_client",
    "elasticsearch",
    "pyarrow",
    "scipy",
    "numpy",
    "requests",
    "urllib3",
    "sqlalchemy",
    "httpx",
)


def entrypoint_modules(root: Path = ROOT) -> list[str]:
    """Every deployment's entrypoint module in ``prefect.yaml`` (``flows/export.py:export`` -> ``flows.export``)."""
    config = yaml.safe_load((root / "prefect.yaml").read_text())
    modules = [d["entrypoint"].partition(":")[0].removesuffix(".py").replace("/", ".") for d in config["deployments"]]
    return list(dict.fromkeys([*modules, DISPATCHER]))


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}


def time_once(code: str, root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -c <code>`` in a fresh interpreter, run from ``root``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=_env(root))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_code(code: str, roots: list[Path], runs: int) -> list[tuple[float, float]]:
    """Median wall and CPU seconds of ``python -c <code>`` per root, the roots' runs alternating."""
    samples: list[list[tuple[float, float]]] = [[] for _ in roots]
    for _ in range(runs):
        for i, root in enumerate(roots):
            samples[i].append(time_once(code, root))
    return [(statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for s in samples]


def heavy_modules(module: str, root: Path) -> list[str]:
    """The ``HEAVY`` packages in ``sys.modules`` after importing ``module`` in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=root, env=_env(root), capture_output=True, text=True
    )
    return result.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per row (median)")
    parser.add_argument("--against", type=Path, help="another checkout to time first (the 'before' columns)")
    args = parser.parse_args()
    roots = [args.against.resolve(), ROOT] if args.against else [ROOT]

    print(f"python {sys.version.split()[0]}, {args.runs} runs per row, load average {os.getloadavg()[0]:.1f} at start")
    if args.against:
        print(f"before: {roots[0]}; after: {ROOT}")
        print()
        print("| import | wall ms before | after | CPU ms before | after | heavy packages before -> after |")
        print("|---|---:|---:|---:|---:|---|")
    else:
        print()
        print("| import | wall ms | CPU ms | heavy packages left in sys.modules |")
        print("|---|---:|---:|---|")
    modules = list(dict.fromkeys(m for root in roots for m in entrypoint_modules(root)))
    rows = [("`python -c pass`", "pass", None), ("`prefect`", "import prefect", "prefect")]
    rows += [(f"`{m}`", f"import {m}", m) for m in modules]
    for label, code, module in rows:
        timings = time_code(code, roots, args.runs)
        walls = " | ".join(f"{wall * 1000:,.0f}" for wall, _ in timings)
        cpus = " | ".join(f"{cpu * 1000:,.0f}" for _, cpu in timings)
        heavy = " -> ".join(", ".join(heavy_modules(module, root)) or "-" for root in roots) if module else ""
        print(f"| {label} | {walls} | {cpus} | {heavy} |", flush=True)
    print()
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
