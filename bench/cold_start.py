"""Cold start of each function: a fresh Python process to its first handled event.

Starts the local system once (moto's server with the template's resources, the provider sandboxes),
then, for every run, spawns a fresh `python -c` process with the environment a Lambda execution
environment would have (the template's variables resolved to the local resources, plus
`AWS_LAMBDA_FUNCTION_NAME`, `LAMBDA_TASK_ROOT`, `_HANDLER`, ...). The child imports
`functions/<name>/app.py` the way the runtime does (by file, as module `app`: Lambda's init
phase), then invokes `lambda_handler` with one event from `events/` (a form post for intake, a
one-record SQS batch for dispatcher), made unique per run so every run does the full work.

The functions run from the layer as its build makes it (`layers/orderbridge/Makefile`, what `sam
build` runs), built twice in a scratch directory for this machine's Python: once as built (with
unchecked-hash bytecode) and once without bytecode (what the layer shipped before). The layer is
first on `PYTHONPATH` and nothing is written (`PYTHONDONTWRITEBYTECODE=1`: Lambda's /opt is
read-only), so the series without bytecode compiles what it imports at every cold start, as
Lambda would; boto3 comes from this environment, as the runtime's own does on Lambda.

Each round runs every series once, in a rotating order, next to a baseline handler that imports
only boto3 and answers (`bench/baseline_handler.py`); ratios are taken within a round and the
median over rounds is reported. One extra `-X importtime` run per series (not timed) lists
where the import time goes. Prints tables and writes bench/results/cold_start.json.

    .venv/bin/python bench/cold_start.py --runs 7
    .venv/bin/python bench/cold_start.py --tracing   # X-Ray on, as deployed (Tracing: Active)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BENCH, ROOT, median, ms, quiet_function_logs, ratio, write_result
from rich.console import Console
from rich.table import Table

from orderbridge_local.system import LocalSystem, Settings

# The child: what the Lambda runtime does for a cold invocation, with timestamps.
# It writes markers on stderr so that `-X importtime` output can be split by phase, and ends
# with os._exit so interpreter teardown (not part of a cold start) costs nothing.
CHILD = r"""
import time
t_start = time.time()
import importlib.util, json, os, sys
handler_path, event_path = sys.argv[1], sys.argv[2]
with open(event_path) as fh:
    event = json.load(fh)

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "cold-start-bench"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000

profile = os.environ.get("BENCH_PROFILE_INIT") == "1"
if profile:
    import cProfile
    profiler = cProfile.Profile()
sys.stderr.write("BENCH_MARK init\n"); sys.stderr.flush()
t_init = time.time()
if profile:
    profiler.enable()
spec = importlib.util.spec_from_file_location("app", handler_path)
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
if profile:
    profiler.disable()
t_invoke = time.time()
sys.stderr.write("BENCH_MARK invoke\n"); sys.stderr.flush()
result = module.lambda_handler(event, Context())
t_done = time.time()
sys.stderr.write("BENCH_MARK done\n"); sys.stderr.flush()
if profile:
    import pstats
    stats = pstats.Stats(profiler)
    made = [(v[1], v[3]) for k, v in stats.stats.items()
            if k[2] == "create_client" and k[0].replace("\\", "/").endswith("botocore/session.py")]
    sys.stdout.write("BENCH_PROFILE " + json.dumps({
        "init_seconds": stats.total_tt,
        "clients": sum(n for n, _ in made),
        "client_seconds": sum(c for _, c in made),
    }) + "\n")
sys.stdout.write("BENCH_RESULT " + json.dumps({
    "t_start": t_start, "t_init": t_init, "t_invoke": t_invoke, "t_done": t_done,
    "result": result if isinstance(result, dict) else str(result),
}) + "\n")
sys.stdout.flush()
os._exit(0)
"""

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)\s*$")


@dataclass
class Series:
    name: str  # row label
    function: str  # intake | dispatcher | baseline
    handler: Path
    kind: str  # api | sqs: which event it gets
    baseline: str | None = None  # the series it is compared with
    layer: Path | None = None  # the built layer's python/ folder, first on PYTHONPATH
    twin: str | None = None  # the same function from the layer with bytecode (for the gain table)
    runs: list[dict[str, float]] = field(default_factory=list)
    imports: dict[str, Any] = field(default_factory=dict)


# --- events ----------------------------------------------------------------------------------------


def api_event(directory: Path) -> Path:
    """The JSON form post of events/, with a fresh submission id (so it is not a duplicate)."""
    sample = json.loads((ROOT / "events" / "api-form-json.json").read_text())
    sample.pop("x-orderbridge-demo", None)
    body = json.loads(sample["body"])
    body["submission_id"] = f"cold-{uuid.uuid4().hex}"
    sample["body"] = json.dumps(body)
    sample["requestContext"]["requestId"] = str(uuid.uuid4())
    path = directory / f"api-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(sample))
    return path


def sqs_event(directory: Path) -> Path:
    """The one-record SQS batch of events/, with a fresh external order id (a new order)."""
    sample = json.loads((ROOT / "events" / "sqs-order-event.json").read_text())
    sample.pop("x-orderbridge-demo", None)
    record = sample["Records"][0]
    body = json.loads(record["body"])
    body["order"]["external_order_id"] = f"COLD-{uuid.uuid4().hex[:12]}"
    record["body"] = json.dumps(body)
    record["messageId"] = str(uuid.uuid4())
    path = directory / f"sqs-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(sample))
    return path


def handled(series: Series, result: Any) -> bool:
    """Did the event get the full treatment (not an error, not a duplicate)?"""
    if not isinstance(result, dict):
        return False
    if series.kind == "sqs":
        return result.get("batchItemFailures") == []
    if series.function == "baseline":
        return result.get("statusCode") == 202
    try:
        body = json.loads(result.get("body") or "{}")
    except ValueError:
        return False
    return result.get("statusCode") == 202 and body.get("duplicate") is False


# --- the child process -----------------------------------------------------------------------------


def lambda_env(base: dict[str, str], series: Series, tracing: bool) -> dict[str, str]:
    env = dict(base)
    name = {"intake": "IntakeFunction", "dispatcher": "DispatcherFunction"}.get(series.function, "Baseline")
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(series.handler.parent),
            "_HANDLER": f"{series.handler.stem}.lambda_handler",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if series.layer is not None:
        env["PYTHONPATH"] = str(series.layer)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # /opt is read-only on Lambda
    if tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "false"
        env["AWS_XRAY_CONTEXT_MISSING"] = "IGNORE_ERROR"
        env["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:2000"  # UDP, nobody listening: segments dropped
        env["_X_AMZN_TRACE_ID"] = (
            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
        )
    return env


def run_child(series: Series, env: dict[str, str], event: Path, importtime: bool) -> tuple[dict, str]:
    """One cold start. With `importtime`, also -X importtime and a profile of init (not timed)."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", CHILD]
    env = {**env, "BENCH_PROFILE_INIT": "1"} if importtime else env
    cmd += [str(series.handler), str(event)]
    spawned = time.time()
    proc = subprocess.run(
        cmd, env=env, cwd=series.handler.parent, capture_output=True, text=True, timeout=120, check=False
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(
            f"{series.name}: the child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    timing = {
        "process_start": data["t_init"] - spawned,  # interpreter up, runtime ready to import
        "init": data["t_invoke"] - data["t_init"],  # import of the handler module (Lambda's init)
        "first_event": data["t_done"] - data["t_invoke"],  # the first invocation
        "total": data["t_done"] - spawned,
        "ok": handled(series, data["result"]),
    }
    profile = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_PROFILE ")), None)
    if profile:
        timing["profile"] = json.loads(profile.removeprefix("BENCH_PROFILE "))
    return timing, proc.stderr


# --- -X importtime ---------------------------------------------------------------------------------


def group_of(module: str) -> str:
    """Where to add a module's own import time: its top-level package, one level deeper for
    ours and for Powertools (two for Powertools' utilities), so the rows are things one can make lazy."""
    parts = module.split(".")
    if parts[0] in ("orderbridge", "aws_lambda_powertools"):
        depth = 3 if len(parts) > 2 and parts[1] == "utilities" else 2
        return ".".join(parts[:depth])
    return parts[0]


def parse_importtime(stderr: str) -> dict[str, list[tuple[int, int, int, str]]]:
    """Split `-X importtime` lines by phase: (self us, cumulative us, depth, module)."""
    phases: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
    phase = "startup"
    for line in stderr.splitlines():
        if line.startswith("BENCH_MARK "):
            phase = line.split()[1]
            continue
        m = IMPORT_LINE.match(line)
        if m:
            phases[phase].append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    return phases


def group_costs(lines: list[tuple[int, int, int, str]]) -> dict[str, dict[str, Any]]:
    """Own import time per group, with the module that first pulled each group in."""
    groups: dict[str, dict[str, Any]] = {}
    for i, (self_us, cum_us, depth, module) in enumerate(lines):
        # -X importtime prints a module when its import finishes, after everything it imported
        # (deeper indentation): its importer is the next line that is less indented.
        parent = next((lines[j][3] for j in range(i + 1, len(lines)) if lines[j][2] < depth), "app")
        key = group_of(module)
        g = groups.setdefault(key, {"self_us": 0, "modules": 0, "via": None, "entry_cum": -1})
        g["self_us"] += self_us
        g["modules"] += 1
        if group_of(parent) != key and cum_us > g["entry_cum"]:
            g["via"], g["entry_cum"] = parent, cum_us
    return groups


def import_costs(traces: list[list[tuple[int, int, int, str]]], top: int) -> dict[str, Any]:
    """Median over traces of each group's own import time, largest first."""
    per_trace = [group_costs(lines) for lines in traces]
    names = {name for groups in per_trace for name in groups}
    merged = []
    for name in names:
        seen = [groups[name] for groups in per_trace if name in groups]
        own = median(g["self_us"] for g in seen) if len(seen) == len(per_trace) else 0.0
        merged.append(
            {
                "group": name,
                "own_ms": round(own / 1000, 1),
                "modules": max(g["modules"] for g in seen),
                "first_imported_by": seen[0]["via"],
            }
        )
    total = median(sum(g["self_us"] for g in groups.values()) for groups in per_trace) if traces else 0
    merged.sort(key=lambda g: g["own_ms"], reverse=True)
    for g in merged:
        g["share"] = round(g["own_ms"] * 1000 / total, 3) if total else 0.0
    return {
        "total_ms": round(total / 1000, 1),
        "modules": median(len(lines) for lines in traces) if traces else 0,
        "traces": len(traces),
        "top": merged[:top],
        "all": {g["group"]: g["own_ms"] for g in merged},
    }


# --- the layer -------------------------------------------------------------------------------------


def build_layer(target: Path, *, bytecode: bool) -> Path:
    """The layer as its Makefile builds it, for this machine's Python (host wheels, host bytecode)."""
    version = "{}.{}".format(*sys.version_info[:2])
    proc = subprocess.run(
        [
            "make",
            "-C",
            str(ROOT / "layers" / "orderbridge"),
            "build-OrderbridgeLayer",
            f"ARTIFACTS_DIR={target}",
            f"PYTHON={sys.executable}",
            "PIP_PLATFORM=",
            f"TARGET_VERSION={version}",
            f"TARGET_PYTHON={sys.executable if bytecode else ''}",
            f"REQUIRE_BYTECODE={1 if bytecode else 0}",  # the series without: on purpose
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"layer build failed:\n{proc.stderr[-3000:]}")
    return target / "python"


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="timed cold starts per series (default 7)")
    parser.add_argument("--top", type=int, default=10, help="import costs listed per function")
    parser.add_argument(
        "--importtime-runs", type=int, default=3, help="-X importtime runs per function (default 3)"
    )
    parser.add_argument(
        "--tracing", action="store_true", help="X-Ray tracing on (deployed: Active; local run: off)"
    )
    args = parser.parse_args(argv)
    console = Console(width=140)

    started = time.monotonic()
    with LocalSystem(Settings(start_poller=False)) as system, tempfile.TemporaryDirectory() as tmp:
        with_pyc = build_layer(Path(tmp) / "layer", bytecode=True)
        without_pyc = build_layer(Path(tmp) / "layer-no-bytecode", bytecode=False)
        series = [Series("baseline (API event)", "baseline", BENCH / "baseline_handler.py", "api")]
        for function, kind in (("intake", "api"), ("dispatcher", "sqs")):
            if kind == "sqs":
                series.append(
                    Series("baseline (SQS event)", "baseline", BENCH / "baseline_handler.py", "sqs")
                )
            handler = ROOT / f"functions/{function}/app.py"
            base = f"baseline ({kind.upper()} event)"
            series.append(Series(function, function, handler, kind, base, layer=with_pyc))
            series.append(
                Series(
                    f"{function} (no bytecode)",
                    function,
                    handler,
                    kind,
                    base,
                    layer=without_pyc,
                    twin=function,
                )
            )
        by_name = {s.name: s for s in series}
        quiet_function_logs()
        base_env = dict(os.environ)
        envs = {s.name: lambda_env(base_env, s, args.tracing) for s in series}
        events = {"api": lambda: api_event(Path(tmp)), "sqs": lambda: sqs_event(Path(tmp))}

        # Warm-up: one untimed run of each series (page cache, .pyc files, moto's first calls).
        for s in series:
            run_child(s, envs[s.name], events[s.kind](), importtime=False)
        for r in range(args.runs):
            order = series[r % len(series) :] + series[: r % len(series)]
            for s in order:
                timing, _ = run_child(s, envs[s.name], events[s.kind](), importtime=False)
                s.runs.append(timing)
        # Where the import time goes: -X importtime runs (slower, so not timed), median per package.
        for s in series:
            if (s.function == "baseline" and s.kind == "sqs") or s.twin:
                continue  # the same imports as the other baseline, or as its twin with bytecode
            traces, profiles = [], []
            for _ in range(args.importtime_runs):
                timing, stderr = run_child(s, envs[s.name], events[s.kind](), importtime=True)
                traces.append(parse_importtime(stderr))
                profiles.append(timing["profile"])
            s.imports = {
                "boto_clients_at_init": {
                    "clients": profiles[0]["clients"],
                    "share_of_init": round(
                        median(p["client_seconds"] / p["init_seconds"] for p in profiles), 3
                    ),
                },
                "init": import_costs([t.get("init", []) for t in traces], args.top),
                "first_event": import_costs([t.get("invoke", []) for t in traces], args.top),
            }
        system_url = system.moto_url
    elapsed = time.monotonic() - started

    phases = ("process_start", "init", "first_event", "total")
    rows: list[dict[str, Any]] = []
    for s in series:
        row: dict[str, Any] = {"series": s.name, "runs": len(s.runs)}
        row["all_handled"] = all(t["ok"] for t in s.runs)
        for p in phases:
            row[f"{p}_ms"] = ms(median(t[p] for t in s.runs))
        row["total_min_ms"] = ms(min(t["total"] for t in s.runs))
        row["total_max_ms"] = ms(max(t["total"] for t in s.runs))
        imports = s.imports or by_name[s.twin or "baseline (API event)"].imports
        row["import_time_ms"] = imports["init"]["total_ms"]
        row["imports_during_first_event_ms"] = imports["first_event"]["total_ms"]
        if s.baseline:
            base = by_name[s.baseline]
            row["total_vs_baseline"] = ratio(
                median(t["total"] / b["total"] for t, b in zip(s.runs, base.runs, strict=True)), 1
            )
            row["init_vs_baseline"] = ratio(
                median(t["init"] / b["init"] for t, b in zip(s.runs, base.runs, strict=True)), 1
            )
        rows.append(row)

    table = Table(
        title=f"cold start: fresh process to first handled event, median of {args.runs} runs "
        f"(tracing {'on' if args.tracing else 'off'})"
    )
    for col in (
        "series",
        "process start",
        "init (import)",
        "first event",
        "total",
        "total min-max",
        "total / baseline",
        "init / baseline",
        "imports (importtime)",
        "handled",
    ):
        table.add_column(col, justify="left" if col == "series" else "right", no_wrap=col == "series")
    for row in rows:
        table.add_row(
            row["series"],
            f"{row['process_start_ms']:.0f} ms",
            f"{row['init_ms']:.0f} ms",
            f"{row['first_event_ms']:.0f} ms",
            f"{row['total_ms']:.0f} ms",
            f"{row['total_min_ms']:.0f}-{row['total_max_ms']:.0f}",
            f"{row['total_vs_baseline']:.1f}x" if "total_vs_baseline" in row else "-",
            f"{row['init_vs_baseline']:.1f}x" if "init_vs_baseline" in row else "-",
            f"{row['import_time_ms']:.0f} ms",
            "yes" if row["all_handled"] else "NO",
        )
    console.print(table)

    gain = Table(title="bytecode in the layer: the same cold start without it, side by side in each round")
    for col in ("function", "total without / with", "init without / with", "init with", "init without"):
        gain.add_column(col, justify="left" if col == "function" else "right")
    gains: dict[str, Any] = {}
    for s in series:
        if not s.twin:
            continue
        twin = by_name[s.twin]
        pairs = list(zip(s.runs, twin.runs, strict=True))
        gains[twin.name] = {
            "total_without_over_with": ratio(median(a["total"] / b["total"] for a, b in pairs), 1),
            "init_without_over_with": ratio(median(a["init"] / b["init"] for a, b in pairs), 1),
            "init_with_ms": ms(median(b["init"] for _, b in pairs)),
            "init_without_ms": ms(median(a["init"] for a, _ in pairs)),
        }
        g = gains[twin.name]
        gain.add_row(
            twin.name,
            f"{g['total_without_over_with']:.2f}x",
            f"{g['init_without_over_with']:.2f}x",
            f"{g['init_with_ms']:.0f} ms",
            f"{g['init_without_ms']:.0f} ms",
        )
    console.print(gain)

    for s in series:
        if (s.function == "baseline" and s.kind == "sqs") or s.twin:
            continue
        costs = s.imports["init"]
        t = Table(
            title=f"{s.name}: top {args.top} import costs at init "
            f"({costs['total_ms']:.0f} ms own time over {costs['modules']:.0f} modules, "
            f"median of {costs['traces']} -X importtime runs)"
        )
        for col in ("#", "package", "own ms", "share", "modules", "first imported by"):
            t.add_column(col, justify="right" if col in ("#", "own ms", "share", "modules") else "left")
        for i, g in enumerate(costs["top"], 1):
            t.add_row(
                str(i),
                g["group"],
                f"{g['own_ms']:.1f}",
                f"{g['share']:.0%}",
                str(g["modules"]),
                g["first_imported_by"] or "",
            )
        console.print(t)
        made = s.imports["boto_clients_at_init"]
        console.print(
            f"  boto3 clients created at init: {made['clients']}, "
            f"{made['share_of_init']:.0%} of init time (cProfile, median of the importtime runs)"
        )
        lazy = s.imports["first_event"]
        if lazy["modules"]:
            names = ", ".join(f"{g['group']} {g['own_ms']:.0f} ms" for g in lazy["top"][:5])
            console.print(
                f"  imported during the first event: {lazy['total_ms']:.0f} ms over "
                f"{lazy['modules']:.0f} modules ({names})"
            )

    result = {
        "runs": args.runs,
        "tracing": args.tracing,
        "moto_endpoint": system_url,
        "series": rows,
        "bytecode_gain": gains,
        "layer": "built by layers/orderbridge/Makefile for this machine's Python, with and without bytecode",
        "imports": {s.name: s.imports for s in series},
        "samples": {s.name: s.runs for s in series},
        "wall_seconds": round(elapsed, 1),
    }
    write_result("cold_start_tracing" if args.tracing else "cold_start", result)
    if not all(r["all_handled"] for r in rows):
        console.print("[red]some events were not handled as expected (see samples in the JSON)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
