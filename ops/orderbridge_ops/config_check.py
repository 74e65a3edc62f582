"""`orderbridge config check FILE`: validate a configuration document as the functions will.

The same checks and messages as the functions' loader (`orderbridge.config.validate_document`):
every destination's provider is registered and its settings and route catalog entries are what
the adapter reads, secret ids are under the prefixes the functions' roles may read, and no
`${...}` placeholder is left (unless `--local`: the local run fills them in). Nothing is read
from AWS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from orderbridge.config import InvalidConfigurationError, validate_document
from orderbridge_ops import render
from orderbridge_ops.errors import NOT_FOUND, OK, USAGE


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "config",
        help="Check a configuration document before it is uploaded.",
        description="Check a configuration document before it is uploaded.",
    )
    sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    cmd = sub.add_parser(
        "check",
        help="Validate a configuration document as the functions will (no AWS access).",
        description=__doc__,
        epilog="examples:\n"
        "  orderbridge config check prod.json\n"
        "  orderbridge config check config/local.json --local\n\n"
        "exit codes: 0 valid, 1 invalid, 2 the file cannot be read",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("file", metavar="FILE", type=Path, help="the JSON configuration document")
    cmd.add_argument(
        "--local",
        dest="for_local",
        action="store_true",
        help="the document is for the local run, which fills in ${...} placeholders",
    )
    cmd.set_defaults(offline=cmd_check)


def cmd_check(args: argparse.Namespace, console: Console, errors: Console) -> int:
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        render.error(errors, f"cannot read {path}: {exc}")
        return USAGE
    local = bool(getattr(args, "for_local", False) or getattr(args, "local", False))
    try:
        config = validate_document(text, local=local)
    except InvalidConfigurationError as exc:
        count = len(exc.problems)
        render.error(
            errors, f"{path}: {count} problem{'s' if count != 1 else ''}; the functions would refuse it"
        )
        for problem in exc.problems:
            errors.print(f"  - {escape(problem)}", soft_wrap=True)
        return NOT_FOUND
    console.print(
        f"{escape(str(path))}: valid{' for the local run' if local else ''} "
        f"({len(config.destinations)} destinations, {len(config.routes)} routes, {len(config.forms)} forms, "
        f"{len(config.webhooks)} webhook sources, {len(config.imports)} import sources)"
    )
    return OK
