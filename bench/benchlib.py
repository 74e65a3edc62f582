"""Helpers shared by the bench scripts: statistics, machine description, results, quiet logs.

The scripts import it as `benchlib` (they run as `python bench/<name>.py`, so `bench/` is on the path).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


def _run(*cmd: str) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10, cwd=ROOT)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def machine() -> dict[str, Any]:
    """What the figures were measured on (they mean little without it)."""
    return {
        "uname": _run("uname", "-a") or " ".join(platform.uname()),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and whether files outside bench/ and docs/ differed from it."""
    status = _run("git", "status", "--porcelain", "--untracked-files=all") or ""
    changed = [line[3:] for line in status.splitlines() if not line[3:].startswith(("bench/", "docs/"))]
    return {"commit": _run("git", "rev-parse", "--short", "HEAD"), "uncommitted_changes": len(changed)}


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ms(seconds: float, digits: int = 1) -> float:
    return round(seconds * 1000.0, digits)


def mib(n_bytes: float, digits: int = 2) -> float:
    return round(n_bytes / (1024 * 1024), digits)


def ratio(numerator: float, denominator: float, digits: int = 2) -> float:
    return round(numerator / denominator, digits) if denominator else math.nan


def write_result(name: str, result: dict[str, Any], argv: Sequence[str] | None = None) -> Path:
    """Write `bench/results/<name>.json` with when, where and how it was measured."""
    RESULTS.mkdir(exist_ok=True)
    document = {
        "bench": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "code": code_version(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def quiet_function_logs(service: str = "orderbridge") -> None:
    """Send the functions' Powertools logs to /dev/null, keeping their level (so their cost stays)."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for name in (service, f"{service}-local"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
