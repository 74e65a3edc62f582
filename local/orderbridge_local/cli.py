"""`orderbridge-local`: bring the system up on this machine, or run the demo through it.

`up` runs one store setup file (default config/local.json; `--config`) until Ctrl-C and reloads
it whenever it changes (or on `orderbridge-local reload` / SIGHUP), keeping every queue, table
and record; `demo` sends every sample in events/ through a fresh system and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orderbridge_local.apigw import SHAPE_ENV, SHAPES
from orderbridge_local.demo import log_lines_to, run_demo
from orderbridge_local.errors import NotRunningError
from orderbridge_local.killpoints import KILL_AT_ENV
from orderbridge_local.killpoints import parse as parse_kill_points
from orderbridge_local.processes import ProcessRun
from orderbridge_local.reload import RESULT_FILE, ConfigWatcher, install_sighup, request_reload
from orderbridge_local.system import (
    DEFAULT_CONFIG,
    ROOT,
    STATE_FILE,
    WORK_DIR,
    LocalSystem,
    ReloadResult,
    Settings,
    check_local_files,
)

DEMO_LOG = WORK_DIR / "demo.log"


def _print_endpoints(system: LocalSystem | ProcessRun, console: Console) -> None:
    table = Table(title="orderbridge local run")
    table.add_column("what")
    table.add_column("where")
    for name, url in system.endpoints().items():
        table.add_row(name, url)
    console.print(table)


def template_api_shape(root: Path = ROOT) -> str | None:
    """The intake's event shape the template deploys by default (its IntakeApiType parameter:
    REST -> rest, HTTP -> http), or None if the template has no such parameter."""
    from orderbridge_local.template_resources import load_template

    try:
        parameter = load_template(root / "template.yaml").get("Parameters", {}).get("IntakeApiType") or {}
    except Exception:  # an unreadable template is reported when the resources are made
        return None
    default = str(parameter.get("Default", "")).lower()
    return default if default in SHAPES else None


def _api_shape(option: str | None) -> str:
    """--api-shape, else $ORDERBRIDGE_LOCAL_EVENT_SHAPE, else the template's IntakeApiType, else rest."""
    return option or os.environ.get(SHAPE_ENV) or template_api_shape() or "rest"


class ReloadResultPrinter:
    """Prints each reload's result: what was applied, or why the file was refused."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, result: ReloadResult) -> None:
        if result.ok:
            self.console.print(f"[green]{escape(result.summary())}[/]", soft_wrap=True)
            return
        self.console.print(f"[bold red]{escape(result.summary())}:[/]", soft_wrap=True)
        for problem in result.problems:
            self.console.print(f"  - {escape(problem)}", soft_wrap=True)


def _write_state(system: LocalSystem | ProcessRun) -> None:
    state = {**system.state(), "pid": os.getpid(), "reload_result": str(RESULT_FILE)}
    STATE_FILE.write_text(json.dumps(state, indent=2))


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
        watcher = ConfigWatcher(run, ReloadResultPrinter(console)).start()
        install_sighup(watcher)
        _write_state(run)
        console.print(f"Operator CLI: `orderbridge --local ...` (reads {STATE_FILE.name})")
        console.print(f"Functions process pid {run.functions.pid if run.functions else '?'}.")
        console.print(f"Watching {run.config_path} for changes (or `orderbridge-local reload`).")
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
            watcher.stop()
            STATE_FILE.unlink(missing_ok=True)
    return 0


def _up(settings: Settings, console: Console) -> int:
    with LocalSystem(settings) as system:
        _print_endpoints(system, console)
        watcher = ConfigWatcher(system, ReloadResultPrinter(console)).start()
        install_sighup(watcher)
        _write_state(system)
        console.print(f"Operator CLI: `orderbridge --local ...` (reads {STATE_FILE.name})")
        console.print(f"Watching {system.config_path} for changes (or `orderbridge-local reload`).")
        console.print("Ready. Ctrl-C to stop.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())  # also where a background job ignores it
        try:
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        finally:
            watcher.stop()
            STATE_FILE.unlink(missing_ok=True)
    return 0


def _reload(console: Console, errors: Console, timeout: float) -> int:
    try:
        result = request_reload(timeout=timeout)
    except (NotRunningError, TimeoutError) as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    if result.get("ok"):
        console.print(escape(str(result.get("summary", "reloaded"))), soft_wrap=True)
        return 0
    errors.print(f"[bold red]{escape(str(result.get('summary', 'refused')))}:[/]", soft_wrap=True)
    for problem in result.get("problems") or []:
        errors.print(f"  - {escape(str(problem))}", soft_wrap=True)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orderbridge-local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = f"the store setup file (default {DEFAULT_CONFIG.relative_to(ROOT)})"
    shape_help = (
        "the event the local API builds: rest (API Gateway REST API, payload 1.0), http (HTTP API, "
        f"payload 2.0) or url (Function URL); default ${SHAPE_ENV}, else template.yaml's "
        "IntakeApiType default, else rest"
    )
    up = sub.add_parser("up", help="run the local system until Ctrl-C, print its endpoints, reload on edits")
    up.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    up.add_argument(
        "--port", "--api-port", dest="api_port", type=int, default=3000, help="intake API port (default 3000)"
    )
    up.add_argument(
        "--host", default="127.0.0.1", help="intake API address (default 127.0.0.1; 0.0.0.0: every interface)"
    )
    up.add_argument("--api-shape", choices=SHAPES, help=shape_help)
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
    reload = sub.add_parser(
        "reload", help="make the running `up` re-read its store setup file now and print the result"
    )
    reload.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the result")
    demo = sub.add_parser("demo", help="start the system, send every sample in events/, print outcomes")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each outcome")
    demo.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    demo.add_argument("--events", type=Path, help="the samples' folder (default events/)")
    demo.add_argument("--api-shape", choices=SHAPES, help=shape_help)
    demo.add_argument(
        "--verbose", action="store_true", help="log lines on the terminal, between the progress lines"
    )
    demo.add_argument(
        "--log-file", type=Path, default=DEMO_LOG, help=f"where log lines go (default {DEMO_LOG})"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)
    errors = Console(file=sys.stderr, stderr=True, width=None if sys.stderr.isatty() else 160)
    if args.command == "reload":
        return _reload(console, errors, args.timeout)
    problems = check_local_files(ROOT, args.config)
    if problems:
        errors.print("[bold red]error:[/] the local configuration is not valid; nothing was started:")
        for problem in problems:
            errors.print(f"  - {escape(problem)}", soft_wrap=True)
        errors.print(f"Fix {escape(str(args.config))} and run again.")
        return 1

    if args.command == "up":
        settings = Settings(
            api_port=args.api_port,
            api_host=args.host,
            api_shape=_api_shape(args.api_shape),
            sandbox_port=args.sandbox_port,
            moto_port=args.moto_port,
            workers=args.workers,
            config=args.config,
        )
        if args.processes:
            return _up_processes(settings, console, kill_at=args.kill_at)
        return _up(settings, console)

    settings = Settings(
        workers=2,
        visibility_timeout=10,
        max_receive_count=3,
        config=args.config,
        api_shape=_api_shape(args.api_shape),
    )
    logs = contextlib.nullcontext() if args.verbose else log_lines_to(args.log_file)
    with logs, LocalSystem(settings) as system:
        _print_endpoints(system, console)
        if not args.verbose:
            console.print(f"Log lines: {args.log_file} (--verbose: here)")
        rows = run_demo(system, events_dir=args.events, timeout=args.timeout, console=console)
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
