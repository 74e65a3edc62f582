"""`orderbridge import ...` and `orderbridge schedule run-now`: imports by hand.

`import` runs one source's mapping over a local file or an S3 prefix, here, with a progress bar,
and prints the run's summary. `schedule run-now` does what the schedule does: it invokes the
deployed import function (`--function-name`, or `--stack-name`'s output `ImporterFunctionName`),
or, without either, runs every enabled source here against the resources the options name.
Either way the lease, the checkpoints and the ledger are the ones the schedule uses, so a run by
hand and a scheduled run never import the same order twice.

Besides the outcome table and the order queue, these commands need (first match wins):
`--import-table` / `--stack-name` output `ImportStateTableName` / `--local` / `$IMPORT_STATE_TABLE`,
`--config-bucket` / `ConfigBucketName` / `--local` / `$CONFIG_BUCKET`, and for S3 sources without a
bucket of their own `--import-bucket` / `ImportBucketName` / `--local` / `$IMPORT_BUCKET`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from orderbridge.config import ConfigStore
from orderbridge.credentials import CredentialStore
from orderbridge.exceptions import ConfigurationError
from orderbridge.imports.enqueue import OrderSink
from orderbridge.imports.feed import FeedClient
from orderbridge.imports.service import (
    ImportService,
    ImportSettings,
    ImportTrigger,
    ProgressEvent,
    UnknownSourceError,
)
from orderbridge.imports.state import ImportStateStore
from orderbridge.imports.summary import RunStatus, RunSummary, SummaryWriter
from orderbridge.payloads import EventCodec
from orderbridge_ops import render
from orderbridge_ops.connect import Connection
from orderbridge_ops.errors import NOT_FOUND, OK, USAGE, OpsError

CONFIG_KEY = "orderbridge.json"
SHOW_REJECTIONS = 20
_RESOURCES = {
    # name: (option attribute, stack output, local state key, environment variable, option)
    "event_payload_bucket": (
        "event_payload_bucket",
        "EventPayloadBucketName",
        "event_payload_bucket",
        "EVENT_PAYLOAD_BUCKET",
        "--stack-name",
    ),
    "import_table": (
        "import_table",
        "ImportStateTableName",
        "import_state_table",
        "IMPORT_STATE_TABLE",
        "--import-table",
    ),
    "config_bucket": (
        "config_bucket",
        "ConfigBucketName",
        "config_bucket",
        "CONFIG_BUCKET",
        "--config-bucket",
    ),
    "import_bucket": (
        "import_bucket",
        "ImportBucketName",
        "import_bucket",
        "IMPORT_BUCKET",
        "--import-bucket",
    ),
    "function": ("function_name", "ImporterFunctionName", "", "", "--function-name"),
}
_STATUS_STYLES = {
    RunStatus.COMPLETED: "green",
    RunStatus.PARTIAL: "yellow",
    RunStatus.LEASE_HELD: "yellow",
    RunStatus.LEASE_LOST: "bold red",
    RunStatus.FAILED: "bold red",
}


def add_options(parser: argparse.ArgumentParser) -> None:
    """The resources these commands need beyond the outcome table and the queues."""
    group = parser.add_argument_group("imports")
    group.add_argument("--import-table", help="import state table (leases, checkpoints, ledger)")
    group.add_argument("--config-bucket", help="bucket holding the configuration document")
    group.add_argument(
        "--config-key", default=CONFIG_KEY, help="configuration document key (default: %(default)s)"
    )
    group.add_argument("--import-bucket", help="the stack's import bucket (S3 sources without a bucket)")


# --- resources and the service ----------------------------------------------------------------------


def _stack_output(conn: Connection, key: str) -> str | None:
    name = conn.target.stack_name
    if not name:
        return None
    try:
        stacks = conn.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        raise OpsError(f"cannot read stack {name!r}: {exc}", hint="check --stack-name and --region") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs", []) if stacks else [])}
    return outputs.get(key)


def resource(conn: Connection, args: argparse.Namespace, name: str, *, required: bool = True) -> str | None:
    attribute, output, state_key, env_var, option = _RESOURCES[name]
    value = getattr(args, attribute, None) or _stack_output(conn, output)
    if not value and conn.target.local and state_key:
        value = conn.state.get(state_key)
    if not value and env_var:
        value = os.environ.get(env_var)
    if not value and required:
        hint = f"pass {option}, --stack-name NAME or --local" + (f", or set {env_var}" if env_var else "")
        raise OpsError(f"no {name.replace('_', ' ')} configured", hint=hint)
    return value or None


def build_service(conn: Connection, args: argparse.Namespace) -> ImportService:
    """The importer, wired to the resources the options name (the same code the function runs)."""
    dynamodb = conn.dynamodb
    state = ImportStateStore(table_name=str(resource(conn, args, "import_table")), dynamodb_client=dynamodb)
    secrets = conn.client("secretsmanager")
    credentials = CredentialStore(secretsmanager_client=secrets)
    return ImportService(
        config=ConfigStore(
            bucket=str(resource(conn, args, "config_bucket")),
            key=getattr(args, "config_key", None) or CONFIG_KEY,
            s3_client=conn.client("s3"),
        ),
        state=state,
        sink=OrderSink(
            sqs_client=conn.sqs,
            queue_url=conn.queue_url,
            dynamodb_client=dynamodb,
            outcome_table=conn.table,
            state=state,
            tracking_ids=conn.tracking_ids(),
            # an order too large for the queue goes by way of S3, as from the function
            codec=EventCodec(
                s3_client=conn.client("s3"),
                bucket=resource(conn, args, "event_payload_bucket", required=False),
            ),
        ),
        summaries=SummaryWriter(dynamodb_client=dynamodb, outcome_table=conn.table, metrics=False),
        s3_client=conn.client("s3"),
        import_bucket=resource(conn, args, "import_bucket", required=False),
        feed_client=FeedClient(credentials=credentials),
        settings=ImportSettings(safety_margin_seconds=2.0),
    )


@contextmanager
def _quiet(debug: bool) -> Iterator[None]:
    """The service logs each rejected row for CloudWatch; here the summary shows them instead."""
    if debug:
        yield
        return
    names = [n for n in list(logging.root.manager.loggerDict) if "orderbridge.imports" in n]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def _progress(console: Console, enabled: bool) -> Iterator[Callable[[ProgressEvent], None] | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]}"),
    )
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, Any] = {}

        def update(event: ProgressEvent) -> None:
            name = event.file or "feed"
            if name not in tasks:
                label = name if len(name) <= 48 else "…" + name[-47:]
                tasks[name] = progress.add_task(label, total=event.total_bytes, rows="")
            s = event.summary
            progress.update(
                tasks[name],
                completed=event.done_bytes,
                rows=f"{s.rows_read} rows: {s.rows_imported} imported, "
                f"{s.rows_skipped} skipped, {s.rows_rejected} rejected",
            )

        yield update


def _deadline(args: argparse.Namespace) -> Callable[[], int] | None:
    if not getattr(args, "max_seconds", None):
        return None
    end = time.monotonic() + float(args.max_seconds)
    return lambda: int((end - time.monotonic()) * 1000)


# --- commands -----------------------------------------------------------------------------------


def cmd_import(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    service = build_service(conn, args)
    remaining = _deadline(args)
    deadline = service.deadline(remaining) if remaining else None
    target: str = args.target
    try:
        with _quiet(args.debug), _progress(console, not args.no_progress) as progress:
            if target.startswith("s3://"):
                bucket, _, prefix = target[len("s3://") :].partition("/")
                if not bucket:
                    raise OpsError(f"{target!r} names no bucket", exit_code=USAGE)
                summary = service.import_s3(
                    args.source, bucket=bucket, prefix=prefix, deadline=deadline, progress=progress
                )
            else:
                path = Path(target)
                if not path.is_file():
                    raise OpsError(f"no such file: {target}", exit_code=USAGE)
                summary = service.import_local_file(
                    args.source, path, format=args.format, deadline=deadline, progress=progress
                )
    except UnknownSourceError as exc:
        raise OpsError(str(exc), hint=_sources_hint(service)) from exc
    except ConfigurationError as exc:
        raise OpsError(str(exc), hint="check --config-bucket / --local") from exc
    print_summary(console, summary, show=args.show_rejections)
    return exit_code([summary])


def cmd_run_now(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    function = resource(conn, args, "function", required=False)
    if function:
        summaries = _invoke(conn, function, args.source)
    else:
        service = build_service(conn, args)
        try:
            with _quiet(args.debug):
                summaries = service.run_all(
                    ImportTrigger(trigger="manual", sources=args.source), remaining_ms=_deadline(args)
                )
        except ConfigurationError as exc:
            raise OpsError(str(exc), hint="check --config-bucket / --local") from exc
    if not summaries:
        render.note(console, "No import source is configured (or enabled).", style="yellow")
        return NOT_FOUND
    for summary in summaries:
        print_summary(console, summary, show=args.show_rejections)
    return exit_code(summaries)


def _invoke(conn: Connection, function: str, sources: list[str] | None) -> list[RunSummary]:
    """Invoke the deployed import function and wait for its summaries (it may run for minutes)."""
    client = conn.session.client(
        "lambda",
        endpoint_url=conn.endpoint_url,
        config=Config(read_timeout=960, connect_timeout=5, retries={"max_attempts": 1}),
    )
    payload = {"trigger": "manual", **({"sources": sources} if sources else {})}
    response = client.invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload)
    )
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise OpsError(f"the import function failed: {body.get('errorMessage', body)}", exit_code=NOT_FOUND)
    return [RunSummary.model_validate(run) for run in body.get("runs", [])]


def _sources_hint(service: ImportService) -> str | None:
    try:
        names = sorted(service.config.load().imports)
    except ConfigurationError:
        return None
    return f"configured import sources: {', '.join(names)}" if names else "the configuration has no imports"


FAILED_RUN = 3  # a run ended FAILED: a file refused as a whole, a feed that failed or cannot move on


def exit_code(summaries: list[RunSummary]) -> int:
    """0: everything read and imported or skipped; 1: rows rejected or the run did not finish;
    3: a run FAILED (a file refused as a whole, a feed error)."""
    if any(s.status is RunStatus.FAILED for s in summaries):
        return FAILED_RUN
    ok = all(s.status is RunStatus.COMPLETED and s.rows_rejected == 0 for s in summaries)
    return OK if ok else NOT_FOUND


# --- rendering ------------------------------------------------------------------------------------


def print_summary(console: Console, summary: RunSummary, *, show: int = SHOW_REJECTIONS) -> None:
    title = Text.assemble(
        ("import ", "bold"),
        (summary.source, "bold cyan"),
        ": ",
        (summary.status.value, _STATUS_STYLES.get(summary.status, "")),
        (f"  (run {summary.run_id}, {summary.kind}, {summary.trigger})", "dim"),
    )
    console.print(title)
    if summary.message:
        console.print(Text(summary.message, style="yellow"))
    counts = Table(box=box.SIMPLE, show_edge=False)
    counts.add_column("")
    counts.add_column("rows", justify="right")
    counts.add_column("orders", justify="right")
    counts.add_row("imported", str(summary.rows_imported), str(summary.orders_imported))
    counts.add_row("skipped (already known)", str(summary.rows_skipped), str(summary.orders_skipped))
    if summary.orders_filtered:
        counts.add_row(
            "  of which left out by filters", str(summary.rows_filtered), str(summary.orders_filtered)
        )
    counts.add_row("rejected", str(summary.rows_rejected), str(summary.orders_rejected))
    counts.add_row(Text("read", style="bold"), Text(str(summary.rows_read), style="bold"), "")
    console.print(counts)
    if summary.files:
        files = Table(box=box.SIMPLE, title="files", title_justify="left")
        for column in ("file", "status", "lines", "imported", "skipped", "rejected", "note"):
            files.add_column(
                column, justify="right" if column in {"imported", "skipped", "rejected"} else "left"
            )
        for f in summary.files:
            files.add_row(
                render.cell(f.file),
                render.cell(f.status),
                render.cell(f"{f.from_line}-{f.to_line}"),
                str(f.rows_imported),
                str(f.rows_skipped),
                str(f.rows_rejected),
                render.cell(f.reason),
            )
        console.print(files)
    if summary.pages_read:
        render.note(console, f"feed pages read: {summary.pages_read}")
    if summary.rejections and show:
        table = Table(box=box.SIMPLE, title="rejected rows", title_justify="left")
        table.add_column("where", no_wrap=True)
        table.add_column("order")
        table.add_column("field")
        table.add_column("reason")
        for rejection in summary.rejections[:show]:
            for issue in rejection.errors:
                where = rejection.ref or f"line {rejection.line}"
                table.add_row(
                    render.cell(where),
                    render.cell(rejection.order_id),
                    render.cell(issue.field),
                    render.cell(issue.message),
                )
        console.print(table)
        more = summary.rows_rejected - min(show, len(summary.rejections))
        if more > 0:
            render.note(
                console,
                f"{more} more rejected row(s): see the run summary (import#{summary.source}) and the logs",
            )
