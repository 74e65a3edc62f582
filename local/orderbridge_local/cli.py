"""`orderbridge-local`: bring the system up on this machine, or run the demo through it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orderbridge_local.demo import run_demo
from orderbridge_local.killpoints import KILL_AT_ENV
from orderbridge_local.killpoints import parse as parse_kill_points
from orderbridge_local.processes import ProcessRun
from orderbridge_local.system import STATE_FILE, LocalSystem, Settings, check_local_files


def _print_endpoints(system: LocalSystem | ProcessRun, console: Console) -> None:
    table = Table(title="orderbridge local run")
    table.add_column("what")
    table.add_column("where")
    for name, url in system.endpoints().items():
        table.add_row(name, url)
    console.print(table)


def _up_processes(settings: Settings, console: Console, *, kill_at: str | None) -> int:
    """`up --processes`: supervise the functions process, starting a fresh one whenever it dies."""
    if kill_at:
        parse_kill_points(kill_at)  # a typo fails here, not in a restart loop
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with ProcessRun(settings, sample_feed=True) as run:
        run.start_functions(kill_at=kill_at)
        _print_endpoints(run, console)
        STATE_FILE.write_text(json.dumps(run.state(), indent=2))
        console.print(f"Operator CLI: `orderbridge --local ...` (reads {STATE_FILE.name})")
        console.print(f"Functions process pid {run.functions.pid if run.functions else '?'}.")
        console.print("Ready. Ctrl-C to stop.")
        try:
            while not stop.wait(0.2):
                if run.functions_alive:
                    continue
                code = run.functions.returncode if run.functions else None
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                console.print(f"functions process exited ({how}): starting a fresh one, as Lambda would")
                try:
                    run.start_functions()
                except RuntimeError as exc:
                    console.print(f"functions process failed to start ({exc}); retrying in 1 s")
                    stop.wait(1.0)
                    continue
                console.print(
                    f"functions process restarted (pid {run.functions.pid if run.functions else '?'})"
                )
        finally:
            STATE_FILE.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderbridge-local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the local system until Ctrl-C and print its endpoints")
    up.add_argument("--api-port", type=int, default=3000, help="intake API port (default 3000)")
    up.add_argument("--sandbox-port", type=int, default=4010, help="provider sandboxes port (default 4010)")
    up.add_argument("--moto-port", type=int, default=5000, help="moto server port (default 5000)")
    up.add_argument("--workers", type=int, default=2, help="concurrent dispatcher instances")
    up.add_argument(
        "--processes",
        action="store_true",
        help="moto, the sandboxes and the functions each in a process of their own; "
        "the functions process is restarted whenever it dies",
    )
    up.add_argument(
        "--kill-at",
        default=os.environ.get(KILL_AT_ENV),
        help=f"with --processes: kill points for the first functions process "
        f"(default: ${KILL_AT_ENV}; syntax: orderbridge_local.killpoints)",
    )
    demo = sub.add_parser("demo", help="start the system, send every sample in events/, print outcomes")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each outcome")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    problems = check_local_files()
    if problems:
        errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
        errors.print("[bold red]error:[/] the local configuration is not valid; nothing was started:")
        for problem in problems:
            errors.print(f"  - {escape(problem)}", soft_wrap=True)
        errors.print(
            "Fix config/local.json, config/local-secrets.json or config/sandboxes.json and run again."
        )
        return 1

    if args.command == "up":
        settings = Settings(
            api_port=args.api_port,
            sandbox_port=args.sandbox_port,
            moto_port=args.moto_port,
            workers=args.workers,
        )
        if args.processes:
            return _up_processes(settings, console, kill_at=args.kill_at)
        with LocalSystem(settings) as system:
            _print_endpoints(system, console)
            STATE_FILE.write_text(json.dumps(system.state(), indent=2))
            console.print(f"Operator CLI: `orderbridge --local ...` (reads {STATE_FILE.name})")
            console.print("Ready. Ctrl-C to stop.")
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            STATE_FILE.unlink(missing_ok=True)
        return 0

    with LocalSystem(Settings(workers=2, visibility_timeout=10, max_receive_count=3)) as system:
        _print_endpoints(system, console)
        rows = run_demo(system, timeout=args.timeout, console=console)
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
