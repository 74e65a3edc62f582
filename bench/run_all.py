"""Run every bench script, one after the other, and print a summary of the figures.

Each script runs in its own process (its tables appear as it finishes) and writes its JSON to
bench/results/; the summary reads them back. throughput.py runs with a short setting. Exit status
1 if any script failed (a non-zero exit: a script found something wrong or crashed).

    .venv/bin/python bench/run_all.py                 # everything, about four minutes on 2 cores
    .venv/bin/python bench/run_all.py --update-docs   # and refresh the tables in docs/performance.md
    .venv/bin/python bench/run_all.py --only cold_start cost_per_order
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from benchlib import BENCH, RESULTS
from rich.console import Console
from rich.table import Table

SCRIPTS: dict[str, list[str]] = {
    "package_size": [],
    "cold_start": [],
    "cost_per_order": [],
    "intake_latency": [],
    "throughput": ["--orders", "300", "--workers", "4"],  # BigCommerce's own 150 per 30 s
}
OPTIONAL: dict[str, tuple[str, list[str]]] = {
    "cold_start_tracing": ("cold_start", ["--tracing"]),
}
# result name -> (script, arguments)
PLANS: dict[str, tuple[str, list[str]]] = {name: (name, extra) for name, extra in SCRIPTS.items()} | OPTIONAL


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def summary_rows(name: str, result: dict[str, Any]) -> list[list[str]]:
    """(figure, value, against, ratio) rows for one result."""
    if name.startswith("cold_start"):
        by = {r["series"]: r for r in result["series"]}
        label = "cold start" + (" (tracing)" if result.get("tracing") else "")
        rows = []
        for fn, base in (("intake", "baseline (API event)"), ("dispatcher", "baseline (SQS event)")):
            rows.append(
                [
                    f"{label}: {fn}, process to first event",
                    f"{by[fn]['total_ms']:.0f} ms",
                    f"boto3-only handler {by[base]['total_ms']:.0f} ms",
                    f"{by[fn]['total_vs_baseline']:.1f}x",
                ]
            )
        return rows
    if name == "cost_per_order":
        return [
            [
                "dispatcher, per order (10-record batch)",
                f"{result['real_ms_per_order']:.1f} ms",
                f"floor {result['floor_ms_per_order']:.1f} ms",
                f"{result['real_vs_floor']:.1f}x",
            ],
            [
                "DynamoDB per order",
                f"{result['dynamodb_calls_per_order']:g} calls, "
                f"{result['dynamodb_bytes_written_per_order']} B written",
                "",
                "",
            ],
        ]
    if name == "intake_latency":
        by = {r["series"]: r for r in result["series"]}
        rows = []
        for kind, label in (("form post", "form post"), ("Shopify webhook", "signed Shopify webhook")):
            real, bare = by[f"intake {kind}"], by[f"bare {kind}"]
            rows.append(
                [
                    f"intake {label}, p50 / p99",
                    f"{real['p50_ms']:.1f} / {real['p99_ms']:.1f} ms",
                    f"enqueue-only {bare['p50_ms']:.1f} / {bare['p99_ms']:.1f} ms",
                    f"{real['p50_vs_bare']:.1f}x / {real['p99_vs_bare']:.1f}x",
                ]
            )
        return rows
    if name == "package_size":
        layer = result["artifacts"]["layer"]
        return [
            [
                "layer, unzipped / zipped",
                f"{layer['unzipped_mb']:.1f} / {layer['zipped_mb']:.1f} MB",
                "250 MB limit / 20 MB target",
                f"{layer['share_of_limit']:.0%} / {layer['unzipped_vs_target']:.2f}x",
            ]
        ]
    if name == "throughput":
        return [
            [
                f"throughput, {result['workers']} dispatchers",
                f"{result['sustained_per_second']}/s, {result['duplicates']} duplicates",
                f"provider limit {result['limit_per_second']}/s",
                f"{result['fraction_of_limit']:.0%}",
            ]
        ]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(PLANS), help="run these only (default: all but --tracing's)"
    )
    parser.add_argument("--tracing", action="store_true", help="also run cold_start.py --tracing")
    parser.add_argument(
        "--update-docs", action="store_true", help="refresh the tables in docs/performance.md"
    )
    args = parser.parse_args(argv)
    console = Console(width=130)

    names = args.only or [*SCRIPTS, *(OPTIONAL if args.tracing else [])]
    plan = {name: PLANS[name] for name in names}

    outcomes: dict[str, tuple[int, float]] = {}
    for name, (script, extra) in plan.items():
        console.rule(f"{script}.py {' '.join(extra)}".strip())
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), *extra], check=False)
        outcomes[name] = (proc.returncode, time.monotonic() - started)

    table = Table(title="orderbridge bench summary (medians; ratios measured side by side in the same run)")
    for col in ("figure", "value", "against", "ratio"):
        table.add_column(col, justify="right" if col == "ratio" else "left")
    failed = [name for name, (code, _) in outcomes.items() if code != 0]
    for name in plan:
        if name in failed:  # its JSON is stale or describes a broken run: not a figure
            table.add_row(f"{name}", f"[red]failed (exit {outcomes[name][0]}), see its output", "", "")
            continue
        result = load(name)
        for row in summary_rows(name, result) if result else []:
            table.add_row(*row)
    console.print(table)
    runs = Table(title="scripts")
    for col in ("script", "exit", "seconds"):
        runs.add_column(col, justify="left" if col == "script" else "right")
    for name, (code, seconds) in outcomes.items():
        runs.add_row(name, str(code) if code == 0 else f"[red]{code}", f"{seconds:.0f}")
    console.print(runs)

    if args.update_docs:
        from report import update_doc

        refreshed = update_doc(skip=failed)
        console.print(f"docs/performance.md: refreshed {', '.join(refreshed) or 'nothing'}")
        if failed:
            console.print(f"[red]not refreshed (the script failed): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
