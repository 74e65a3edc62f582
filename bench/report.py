"""Markdown tables from bench/results/*.json, and the refresh of docs/performance.md.

docs/performance.md holds blocks between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`;
`update_doc()` replaces each block's contents with the table rendered from
`bench/results/NAME.json` (blocks whose result is missing are left alone), and the `machine`
block with the machine the cold-start figures were measured on.

    .venv/bin/python bench/report.py            # refresh docs/performance.md from the results
    .venv/bin/python bench/report.py --print    # print the markdown instead
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import RESULTS, ROOT

DOC = ROOT / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if "measured_at" not in result:  # throughput.py writes the figures only
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        result["measured_at"] = written.isoformat(timespec="seconds")
    return result


def stamp(result: dict[str, Any], argv: str | None = None) -> str:
    when = result.get("measured_at", "?")
    argv = argv or " ".join(result.get("argv", [])) or "defaults"
    code = result.get("code") or {}
    at = ""
    if code.get("commit"):
        dirty = code.get("uncommitted_changes", 0)
        at = f", at {code['commit']}" + (
            f" with {dirty} files changed outside bench/ and docs/" if dirty else ""
        )
    return f"_Measured {when} ({argv}{at})._\n\n"


# --- one renderer per result ---------------------------------------------------------------------


def machine(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    return table(
        ["", ""],
        [
            ["`uname -a`", f"`{m.get('uname', '?')}`"],
            ["CPUs", m.get("cpus", "?")],
            ["Python", f"{m.get('implementation', '')} {m.get('python', '?')}"],
        ],
    )


def cold_start(result: dict[str, Any]) -> str:
    rows = []
    for r in result["series"]:
        rows.append(
            [
                r["series"],
                f"{r['process_start_ms']:.0f} ms",
                f"{r['init_ms']:.0f} ms",
                f"{r['first_event_ms']:.0f} ms",
                f"**{r['total_ms']:.0f} ms**",
                f"{r['total_min_ms']:.0f}-{r['total_max_ms']:.0f} ms",
                f"{r['total_vs_baseline']:.1f}x" if "total_vs_baseline" in r else "-",
                f"{r['init_vs_baseline']:.1f}x" if "init_vs_baseline" in r else "-",
                f"{r['import_time_ms']:.0f} ms",
            ]
        )
    out = stamp(result) + table(
        [
            "series",
            "process start",
            "init (import)",
            "first event",
            "total",
            "total min-max",
            "total / baseline",
            "init / baseline",
            "import time (`-X importtime`)",
        ],
        rows,
        right=range(1, 9),
    )
    tracing = "on" if result["tracing"] else "off"
    out += f"\nMedians of {result['runs']} cold starts per series; tracing {tracing}.\n"
    gains = result.get("bytecode_gain") or {}
    if gains:
        out += (
            "\nBytecode in the layer: each function from the layer its Makefile builds, with and "
            "without .pyc files, side by side in every round (medians of the per-round ratios).\n\n"
        )
        out += table(
            ["function", "total without / with", "init without / with", "init with", "init without"],
            [
                [
                    name,
                    f"{g['total_without_over_with']:.2f}x",
                    f"{g['init_without_over_with']:.2f}x",
                    f"{g['init_with_ms']:.0f} ms",
                    f"{g['init_without_ms']:.0f} ms",
                ]
                for name, g in gains.items()
            ],
            right=range(1, 5),
        )
    for name, imports in result["imports"].items():
        if not imports or name.startswith("baseline"):
            continue
        init = imports["init"]
        made = imports.get("boto_clients_at_init", {})
        out += (
            f"\n**{name}**: top import costs at init ({init['total_ms']:.0f} ms own time over "
            f"{init['modules']:.0f} modules, median of {init['traces']} `-X importtime` runs). "
            f"boto3 clients created at init: {made.get('clients', '?')}, "
            f"{made.get('share_of_init', 0):.0%} of the profiled init.\n\n"
        )
        out += table(
            ["#", "package", "own time", "share", "modules", "first imported by"],
            [
                [
                    i,
                    f"`{g['group']}`",
                    f"{g['own_ms']:.1f} ms",
                    f"{g['share']:.0%}",
                    g["modules"],
                    f"`{g['first_imported_by']}`" if g["first_imported_by"] else "",
                ]
                for i, g in enumerate(init["top"], 1)
            ],
            right=(0, 2, 3, 4),
        )
    return out


def cost_per_order(result: dict[str, Any]) -> str:
    rows = [
        ["real dispatcher, per order", f"**{result['real_ms_per_order']:.2f} ms**"],
        [
            "floor (the same calls with plain `requests` + boto3), per order",
            f"{result['floor_ms_per_order']:.2f} ms",
        ],
        ["overhead of the function, per order", f"{result['overhead_ms_per_order']:.2f} ms"],
        ["real / floor (median of paired rounds)", f"**{result['real_vs_floor']:.1f}x**"],
    ]
    for kind, spent in result.get("floor_ms_per_order_by_kind", {}).items():
        rows.append([f"floor: {kind} calls, per order (mean)", f"{spent:.2f} ms"])
    rows += [
        ["provider requests per order", f"{result['provider_requests_per_order']:g}"],
        ["DynamoDB calls per order", f"{result['dynamodb_calls_per_order']:g}"],
        ["DynamoDB writes per order", f"{result['dynamodb_writes_per_order']:g}"],
        [
            "DynamoDB bytes written per order (write requests)",
            f"{result['dynamodb_bytes_written_per_order']} B",
        ],
        ["DynamoDB bytes sent per order (all requests)", f"{result['dynamodb_bytes_sent_per_order']} B"],
        ["outcome item size when final", f"{result['outcome_item_bytes_final']} B"],
        ["DynamoDB write units per order (at most)", f"{result['dynamodb_wcu_per_order_at_most']:g}"],
        ["every order created", "yes" if result["all_succeeded"] else "**no**"],
    ]
    out = stamp(result) + table(["measure", "value"], rows, right=(1,))
    out += f"\n{result['batch_size']}-record batches, medians of {result['rounds']} rounds.\n\n"
    out += table(
        ["service, operation, table", "calls / order", "bytes / call"],
        [
            [k, f"{v:g}", result["bytes_per_call_by_operation"][k]]
            for k, v in result["calls_per_order_by_operation"].items()
        ],
        right=(1, 2),
    )
    return out


def intake_latency(result: dict[str, Any]) -> str:
    rows = []
    for r in result["series"]:
        rows.append(
            [
                r["series"],
                f"**{r['p50_ms']:.1f} ms**",
                f"{r['p90_ms']:.1f} ms",
                f"**{r['p99_ms']:.1f} ms**",
                f"{r['max_ms']:.1f} ms",
                f"{r['p50_vs_bare']:.1f}x" if "p50_vs_bare" in r else "-",
                f"{r['p99_vs_bare']:.1f}x" if "p99_vs_bare" in r else "-",
            ]
        )
    out = stamp(result) + table(
        ["series", "p50", "p90", "p99", "max", "p50 / bare", "p99 / bare"], rows, right=range(1, 7)
    )
    out += (
        f"\n{result['requests_per_series']} requests per series, "
        f"every one answered 202: {'yes' if result['all_accepted'] else '**no**'}. "
        f"Intake's configuration cache: {result['config_max_age_seconds']} s.\n"
    )
    for r in result["series"]:
        if "aws_calls_per_request" in r:
            calls = ", ".join(f"{k} {v:g}" for k, v in r["aws_calls_per_request"].items())
            out += f"\n- {r['series']}, AWS calls per request: {calls}"
    return out + "\n"


def package_size(result: dict[str, Any]) -> str:
    def size(n: float) -> str:
        return f"{n / 1024:.1f} KB" if n < 100 * 1024 else f"{n / 1048576:.2f} MB"

    out = stamp(result) + f"Built for: {result['platform']}.\n\n"
    out += table(
        [
            "artifact",
            "files",
            "unzipped",
            "zipped",
            "of the 250 MB limit",
            "vs 20 MB target (unzipped / zipped)",
        ],
        [
            [
                name,
                a["files"],
                size(a["unzipped_bytes"]),
                size(a["zipped_bytes"]),
                f"{a['share_of_limit']:.1%}",
                f"{a['unzipped_vs_target']:.2f}x / {a['zipped_vs_target']:.2f}x",
            ]
            for name, a in result["artifacts"].items()
        ],
        right=range(1, 6),
    )
    rp, without = result["runtime_provided_in_layer_mb"], result["layer_without_runtime_provided_mb"]
    out += (
        f"\nIn the layer but already in the runtime (boto3 and its dependencies): {rp['unzipped']:.2f} MB "
        f"unzipped, {rp['zipped']:.2f} MB zipped. The layer without them: {without['unzipped']:.2f} MB / "
        f"{without['zipped']:.2f} MB.\n\n"
    )
    out += table(
        ["#", "package", "version", "unzipped", "zipped", "share", "runtime has it", "required by"],
        [
            [
                i,
                p["package"],
                p["version"],
                f"{p['unzipped_mb']:.2f} MB",
                f"{p['zipped_mb']:.2f} MB",
                f"{p['share_of_layer']:.0%}",
                "yes" if p["runtime_provides"] else "",
                ", ".join(p["required_by"]),
            ]
            for i, p in enumerate(result["packages"][:10], 1)
        ],
        right=(0, 3, 4, 5),
    )
    return out


def throughput(result: dict[str, Any]) -> str:
    rows = [[k, v] for k, v in result.items() if k != "measured_at"]
    return stamp(result, "bench/throughput.py as bench/run_all.py runs it") + table(
        ["measure", "value"], rows, right=(1,)
    )


RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "machine": ("cold_start", machine),
    "cold_start": ("cold_start", cold_start),
    "cold_start_tracing": ("cold_start_tracing", cold_start),
    "cost_per_order": ("cost_per_order", cost_per_order),
    "intake_latency": ("intake_latency", intake_latency),
    "package_size": ("package_size", package_size),
    "throughput": ("throughput", throughput),
}


def render(block: str) -> str | None:
    source, renderer = RENDERERS[block]
    result = load(source)
    return renderer(result) if result is not None else None


def update_doc(doc: Path = DOC, skip: Sequence[str] = ()) -> list[str]:
    """Refresh every block of `doc` that has a result (but those in `skip`); returns those refreshed."""
    text = doc.read_text()
    refreshed: list[str] = []

    def replace(m: re.Match[str]) -> str:
        name = m.group("name")
        body = render(name) if name in RENDERERS and name not in skip else None
        if body is None:
            return m.group(0)
        refreshed.append(name)
        return f"{m.group(1)}\n{body.strip()}\n\n{m.group(4)}"

    doc.write_text(BLOCK.sub(replace, text))
    return refreshed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--print", action="store_true", help="print the markdown, do not touch the doc")
    args = parser.parse_args(argv)
    if args.print:
        for name in RENDERERS:
            body = render(name)
            if body:
                print(f"## {name}\n\n{body}")
        return 0
    refreshed = update_doc()
    print(f"{DOC.relative_to(ROOT)}: refreshed {', '.join(refreshed) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
