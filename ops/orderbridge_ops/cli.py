"""`orderbridge`: the operator's view of outcomes and the dead-letter queue.

Parsing and dispatch only; the commands live in `outcomes.py`, `dlq.py`, `review.py`, `sweep.py`
and `imports.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from rich.console import Console

from orderbridge.constants import STALE_RECEIVED_SECONDS_DEFAULT
from orderbridge.models.outcome import OutcomeStatus
from orderbridge_ops import config_check, dlq, imports, outcomes, render, review, sweep
from orderbridge_ops.connect import DLQ, QUEUE, TABLE, Connection, Target
from orderbridge_ops.errors import USAGE, OpsError

Handler = Callable[[Connection, argparse.Namespace, Console], int]
_NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ExpiredToken",
        "InvalidClientTokenId",
    }
)
_MAX_HELP = "look at no more than this many messages (default: %(default)s)"

_CONNECTION_EPILOG = """
where the resources are (first match wins, per resource):
  --table / --queue-url / --dlq-url      explicit
  --stack-name NAME                      the SAM stack's outputs
  --local                                .orderbridge-local.json (from `make up`)
  OUTCOME_TABLE, ORDER_QUEUE_URL, DEAD_LETTER_QUEUE_URL   environment variables

exit codes: 0 ok, 1 nothing found or only partly done, 2 usage or connection problem
"""


def _status(value: str) -> OutcomeStatus:
    try:
        return OutcomeStatus(value.strip().upper().replace("-", "_"))
    except ValueError:
        names = ", ".join(s.value for s in OutcomeStatus)
        raise argparse.ArgumentTypeError(f"unknown status {value!r} (one of: {names})") from None


def _count(value: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < minimum:
        raise argparse.ArgumentTypeError(f"{value!r} is less than {minimum}")
    return number


def _positive(value: str) -> int:
    return _count(value, 1)


def _when(value: str) -> datetime:
    return outcomes.parse_time(value)


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The global options; on subcommands with SUPPRESS defaults so they may go anywhere."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection")
    group.add_argument("--region", default=default, help="AWS region (default: the profile's/environment's)")
    group.add_argument("--profile", default=default, help="AWS named profile")
    group.add_argument("--endpoint-url", default=default, help="AWS endpoint (e.g. moto's server)")
    group.add_argument("--stack-name", default=default, help="read resources from this stack's outputs")
    group.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="use the local run (.orderbridge-local.json in . or the repo root)",
    )
    group.add_argument("--table", default=default, help="outcome table name")
    group.add_argument("--queue-url", default=default, help="order queue URL")
    group.add_argument("--dlq-url", default=default, help="dead-letter queue URL")
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show tracebacks",
    )


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    summary: str,
    examples: str,
    handler: Handler | None = None,
    needs: Sequence[str] = (),
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog="examples:\n" + examples.rstrip() + "\n" + (_CONNECTION_EPILOG if handler else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        _connection_options(parser, suppress=True)
        parser.set_defaults(handler=handler, needs=tuple(needs))
    return parser


def _no_longer_reviewed(parser: argparse.ArgumentParser) -> None:
    """`--reviewed` is gone (`review resolve` records the check); kept hidden, to say so when used."""
    parser.add_argument("--reviewed", action="store_true", help=argparse.SUPPRESS)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="append",
        type=_status,
        metavar="STATUS",
        help="only this status (repeatable; default: every status). "
        + ", ".join(s.value for s in OutcomeStatus),
    )
    parser.add_argument("--source", help="only orders from this source (e.g. erp, shopify-demo)")
    parser.add_argument("--external-id", help="the source's order id (needs --source; by-source-ref index)")
    parser.add_argument(
        "--since", type=_when, metavar="WHEN", help="updated at/after: 2h, 30m, 3d, 1w or ISO time"
    )
    parser.add_argument(
        "--until", type=_when, metavar="WHEN", help="updated at/before: same forms as --since"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orderbridge",
        description="Operate orderbridge: read outcome records, inspect and redrive the dead-letter queue.",
        epilog="examples:\n"
        "  orderbridge --local outcomes list --status FAILED_PERMANENT\n"
        "  orderbridge --stack-name orderbridge-prod dlq list\n"
        "  orderbridge outcomes show ob_0123456789abcdef0123456789abcdef --local\n" + _CONNECTION_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # outcomes ...
    group = _command(
        commands,
        "outcomes",
        "Read outcome records: list, show one order's history, export.",
        "  orderbridge outcomes list --status FAILED_PERMANENT --since 1d\n"
        "  orderbridge outcomes show ob_0123456789abcdef0123456789abcdef\n"
        "  orderbridge outcomes export --format csv --since 7d --output outcomes.csv",
    )
    sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    cmd = _command(
        sub,
        "list",
        "List outcomes (one row per order and destination), newest first.",
        "  orderbridge outcomes list --local\n"
        "  orderbridge outcomes list --status FAILED_PERMANENT --status DEAD_LETTERED --since 2h\n"
        "  orderbridge outcomes list --source shopify-demo --external-id 5123456789\n"
        "  orderbridge outcomes list --stack-name orderbridge-prod --since 2024-05-01 --until 2024-05-02\n"
        "  orderbridge outcomes list --status SUCCEEDED --limit 0   # every row, no limit",
        outcomes.cmd_list,
        needs=(TABLE,),
    )
    _filters(cmd)
    cmd.add_argument(
        "--limit", type=_count, default=100, help="at most this many rows (0: all; default: 100)"
    )
    cmd = _command(
        sub,
        "show",
        "Show one order: every destination's record and its full history.",
        "  orderbridge outcomes show ob_0123456789abcdef0123456789abcdef\n"
        "  orderbridge --local outcomes show ob_0123456789abcdef0123456789abcdef",
        outcomes.cmd_show,
        needs=(TABLE,),
    )
    cmd.add_argument("tracking_id", metavar="TRACKING_ID", help="the order's tracking id (ob_...)")
    cmd = _command(
        sub,
        "export",
        "Export outcomes as CSV or JSON Lines (flat rows, oldest first).",
        "  orderbridge outcomes export --format csv --output outcomes.csv\n"
        "  orderbridge outcomes export --format jsonl --status FAILED_PERMANENT --since 7d > failed.jsonl",
        outcomes.cmd_export,
        needs=(TABLE,),
    )
    cmd.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")
    _filters(cmd)
    cmd.add_argument("--output", "-o", default="-", metavar="FILE", help="write here (default -: stdout)")

    # dlq ...
    group = _command(
        commands,
        "dlq",
        "Inspect the dead-letter queue and send its events back to the order queue.",
        "  orderbridge dlq list\n  orderbridge dlq redrive --id ob_0123456789abcdef0123456789abcdef",
    )
    sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    cmd = _command(
        sub,
        "list",
        "Peek at the dead-letter queue without consuming anything.",
        "  orderbridge dlq list --local\n  orderbridge --stack-name orderbridge-prod dlq list --max 50",
        dlq.cmd_list,
        needs=(DLQ,),
    )
    cmd.add_argument("--max", type=_positive, default=dlq.DEFAULT_MAX, help=_MAX_HELP)
    cmd = _command(
        sub,
        "redrive",
        "Reopen failed deliveries and move their events back to the order queue.",
        "  orderbridge dlq redrive --id ob_0123456789abcdef0123456789abcdef\n"
        "  orderbridge dlq redrive --id ob_0123... --id ob_4567... --yes\n"
        "  orderbridge dlq redrive --all --yes",
        dlq.cmd_redrive,
        needs=(TABLE, QUEUE, DLQ),
    )
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every message with a valid order event")
    which.add_argument(
        "--id",
        action="extend",
        nargs="+",
        metavar="TRACKING_ID",
        help="only these orders' messages (repeatable); others stay on the queue",
    )
    cmd.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _no_longer_reviewed(cmd)
    cmd.add_argument("--max", type=_positive, default=dlq.DEFAULT_MAX, help=_MAX_HELP)

    # retry
    cmd = _command(
        commands,
        "retry",
        "Retry one failed order: reopen it and redrive its dead-letter message.",
        "  orderbridge retry ob_0123456789abcdef0123456789abcdef\n"
        "  orderbridge retry ob_0123456789abcdef0123456789abcdef --destination bc-demo\n"
        "  orderbridge retry ob_0123456789abcdef0123456789abcdef --reopen-only   # you re-send the event",
        dlq.cmd_retry,
        needs=(TABLE, QUEUE, DLQ),
    )
    cmd.add_argument("tracking_id", metavar="TRACKING_ID", help="the order's tracking id (ob_...)")
    cmd.add_argument("--destination", help="reopen only this destination (default: every failed one)")
    _no_longer_reviewed(cmd)
    cmd.add_argument(
        "--reopen-only",
        action="store_true",
        help="only make the failed deliveries retryable; do not touch the dead-letter queue",
    )
    cmd.add_argument("--max", type=_positive, default=dlq.DEFAULT_MAX, help=_MAX_HELP)

    # review ...
    group = _command(
        commands,
        "review",
        "Deliveries in doubt (the provider may have the order): list them, record what you found.",
        "  orderbridge review list\n"
        "  orderbridge review resolve ob_0123... --not-created --by ana --reason 'no order in the admin'\n"
        "  orderbridge review resolve ob_0123... --created --provider-order-id 1042 --by ana --reason "
        "'found it'",
    )
    sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    cmd = _command(
        sub,
        "list",
        "List deliveries in doubt, oldest first, and where to look for each at its provider.",
        "  orderbridge review list --local\n"
        "  orderbridge review list --stack-name orderbridge-prod --since 7d",
        review.cmd_list,
        needs=(TABLE,),
    )
    cmd.add_argument("--since", type=_when, metavar="WHEN", help="updated at/after: 2h, 3d, 1w or ISO time")
    cmd.add_argument("--until", type=_when, metavar="WHEN", help="updated at/before: same forms as --since")
    cmd = _command(
        sub,
        "resolve",
        "Record what you found at the provider: --created (SUCCEEDED, with its order id) or "
        "--not-created (then sent: its event is redriven from the DLQ). Who and why go in the history.",
        "  orderbridge review resolve ob_0123456789abcdef0123456789abcdef --created "
        "--provider-order-id 1042 \\\n"
        "      --by ana --reason 'order 1042 in the BigCommerce admin has this external id'\n"
        "  orderbridge review resolve ob_0123456789abcdef0123456789abcdef --destination komerza-demo "
        "--not-created \\\n"
        "      --by ana --reason 'no order with this tracking id in the Komerza dashboard'",
        review.cmd_resolve,
        needs=(TABLE, QUEUE, DLQ),
    )
    cmd.add_argument("tracking_id", metavar="TRACKING_ID", help="the order's tracking id (ob_...)")
    cmd.add_argument("--destination", help="the destination in doubt (needed if the order has several)")
    found = cmd.add_mutually_exclusive_group(required=True)
    found.add_argument("--created", action="store_true", help="the provider has the order")
    found.add_argument("--not-created", action="store_true", help="the provider has no such order: send it")
    cmd.add_argument("--provider-order-id", metavar="ID", help="with --created: the provider's order id")
    cmd.add_argument("--by", required=True, metavar="NAME", help="who checked (kept in the history)")
    cmd.add_argument("--reason", required=True, metavar="TEXT", help="what you found (kept in the history)")
    cmd.add_argument("--max", type=_positive, default=dlq.DEFAULT_MAX, help=_MAX_HELP)

    # sweep
    cmd = _command(
        commands,
        "sweep",
        "Mark stalled deliveries now, as the scheduled sweeper does: RECEIVED for too long "
        "(NOT_STARTED), IN_FLIGHT with its lease over (ABANDONED).",
        "  orderbridge sweep --dry-run --local\n"
        "  orderbridge sweep --older-than 3600 --stack-name orderbridge-prod",
        sweep.cmd_sweep,
        needs=(TABLE,),
    )
    cmd.add_argument(
        "--older-than",
        type=_positive,
        default=STALE_RECEIVED_SECONDS_DEFAULT,
        metavar="SECONDS",
        help="a RECEIVED record older than this is stalled (default: %(default)s, as the sweeper)",
    )
    cmd.add_argument("--dry-run", action="store_true", help="only show what would be marked")

    # import (docs/imports.md)
    cmd = _command(
        commands,
        "import",
        "Import orders from a local file or an S3 prefix with an import source's mapping.",
        "  orderbridge import orders.csv --source erp-files --local\n"
        "  orderbridge import export.jsonl --source erp-jsonl --format jsonl --local\n"
        "  orderbridge import s3://my-bucket/incoming/erp/ --source erp-files --stack-name orderbridge-prod",
        imports.cmd_import,
        needs=(TABLE, QUEUE),
    )
    cmd.add_argument(
        "target", metavar="FILE_OR_S3_URL", help="a CSV / JSON Lines file, or s3://bucket/prefix/"
    )
    cmd.add_argument("--source", required=True, help="the import source whose mapping and route apply")
    cmd.add_argument(
        "--format", choices=("csv", "jsonl"), help="a local file's format (default: by extension)"
    )
    cmd.add_argument("--max-seconds", type=_positive, help="stop (at a checkpoint) after this long")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar")
    cmd.add_argument(
        "--show-rejections",
        type=_count,
        default=imports.SHOW_REJECTIONS,
        help="rejected rows to list (default: 20)",
    )
    imports.add_options(cmd)

    # schedule run-now
    group = _command(
        commands,
        "schedule",
        "The import schedule: run it now, by hand.",
        "  orderbridge schedule run-now --local\n"
        "  orderbridge schedule run-now --stack-name orderbridge-prod",
    )
    sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    cmd = _command(
        sub,
        "run-now",
        "Run every enabled import source now: invoke the deployed function, or run here.",
        "  orderbridge schedule run-now --local\n"
        "  orderbridge schedule run-now --source demo-feed --local\n"
        "  orderbridge schedule run-now --stack-name orderbridge-prod   # invokes ImporterFunction",
        imports.cmd_run_now,
    )
    cmd.add_argument("--source", action="append", metavar="NAME", help="only this source (repeatable)")
    cmd.add_argument("--function-name", help="invoke this deployed import function instead of running here")
    cmd.add_argument(
        "--max-seconds", type=_positive, help="running here: stop (at a checkpoint) after this long"
    )
    cmd.add_argument(
        "--show-rejections",
        type=_count,
        default=imports.SHOW_REJECTIONS,
        help="rejected rows to list (default: 20)",
    )
    imports.add_options(cmd)

    # config check (no AWS access)
    config_check.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return, do not exit, when called in-process
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else USAGE)
    console = render.make_console()
    errors = render.make_console(stderr=True)
    if getattr(args, "offline", None) is not None:  # commands that read no AWS resources
        return args.offline(args, console, errors)
    target = Target(
        region=args.region,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        table=args.table,
        queue_url=args.queue_url,
        dlq_url=args.dlq_url,
        stack_name=args.stack_name,
        local=args.local,
    )
    try:
        conn = Connection(target)
        conn.require(*args.needs)
        return args.handler(conn, args, console)
    except OpsError as exc:
        render.error(errors, exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        render.error(errors, "interrupted")
        return 130
    except (BotoCoreError, ClientError) as exc:
        if args.debug:
            raise
        message, hint = _describe_aws_error(exc, conn_hint=target)
        render.error(errors, message, hint)
        return USAGE
    except Exception as exc:
        if args.debug:
            raise
        render.error(errors, f"unexpected {type(exc).__name__}: {exc}", "--debug shows the traceback")
        return USAGE


def _describe_aws_error(exc: Exception, *, conn_hint: Target) -> tuple[str, str | None]:
    where = conn_hint.endpoint_url or "AWS"
    if isinstance(exc, EndpointConnectionError):
        hint = "is the local system running (`make up`)?" if conn_hint.local else "check the endpoint/region"
        return f"cannot reach {exc.kwargs.get('endpoint_url', where)}", hint
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials", "pass --profile or set AWS_PROFILE (--local needs none)"
    if isinstance(exc, NoRegionError):
        return "no AWS region configured", "pass --region"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, text = error.get("Code", "Error"), error.get("Message", str(exc))
        operation = getattr(exc, "operation_name", "")
        hint = None
        if code in _NOT_FOUND_CODES:
            hint = "check --table/--queue-url/--dlq-url (or --stack-name / --local)"
        elif code in _DENIED_CODES:
            hint = "check --profile and its permissions"
        return f"{operation}: {code}: {text}", hint
    return str(exc), None


if __name__ == "__main__":
    sys.exit(main())
