"""`orderbridge outcomes ...`: list, show and export outcome records.

Every read is a Query (the table's key, the `by-status` or the `by-source-ref` index), never a Scan:
the table holds a record per order and destination for 400 days.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from rich.console import Console
from rich.text import Text

from orderbridge.models.outcome import OrderState, Outcome, OutcomeStatus, order_state
from orderbridge.outcomes.store import BY_STATUS_INDEX
from orderbridge_ops import render
from orderbridge_ops.connect import Connection
from orderbridge_ops.dlq import NO_DESTINATION, in_doubt
from orderbridge_ops.errors import NOT_FOUND, OK, USAGE, OpsError
from orderbridge_ops.guidance import guidance, queue_visibility_timeout

ALL_STATUSES = tuple(OutcomeStatus)
EXPORT_COLUMNS = (
    "tracking_id",
    "destination",
    "status",
    "provider",
    "route",
    "source",
    "external_order_id",
    "attempts",
    "provider_order_id",
    "provider_reference",
    "redirect_url",
    "http_status",
    "error_code",
    "error_message",
    "unknown_result",
    "created_at",
    "updated_at",
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_ser = TypeSerializer()
_de = TypeDeserializer()


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """`2h`, `30m`, `3d`, `1w` ago, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = value.strip()
    match = _RELATIVE.match(text.lower())
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a duration (30m, 2h, 3d, 1w) nor an ISO date/time (2024-05-01T10:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- queries -------------------------------------------------------------------------------------


def query_status(
    ddb: Any,
    table: str,
    status: OutcomeStatus,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    newest_first: bool = True,
) -> Iterator[Outcome]:
    """Outcomes with `status` updated in [since, until], page by page, from the by-status index."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": BY_STATUS_INDEX,
        "KeyConditionExpression": "#s = :s AND updated_at BETWEEN :lo AND :hi",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":s": _ser.serialize(status.value),
            ":lo": _ser.serialize((since or _EARLIEST).isoformat()),
            ":hi": _ser.serialize((until or _LATEST).isoformat()),
        },
        "ScanIndexForward": not newest_first,
    }
    while True:
        page = ddb.query(**kwargs)
        for item in page["Items"]:
            yield Outcome.model_validate({k: _de.deserialize(v) for k, v in item.items()})
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def select(
    conn: Connection,
    *,
    statuses: Iterable[OutcomeStatus] | None = None,
    source: str | None = None,
    external_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> tuple[list[Outcome], bool]:
    """Matching outcomes, newest first, at most `limit`; and whether more matched."""
    if external_id and not source:
        raise OpsError("--external-id needs --source (the index key is source#external_order_id)")
    wanted = tuple(dict.fromkeys(statuses or ALL_STATUSES))
    if source and external_id:
        found = [
            o
            for o in conn.outcome_store().find_by_source_ref(source, external_id)
            if o.status in wanted and _within(o, since, until)
        ]
    else:
        found = []
        for status in wanted:
            rows: Iterator[Outcome] = query_status(
                conn.dynamodb, conn.table, status, since=since, until=until
            )
            if source:
                rows = (o for o in rows if o.source == source)
            found += itertools.islice(rows, limit + 1) if limit else rows
    found.sort(key=lambda o: (o.updated_at, o.tracking_id, o.destination), reverse=True)
    if limit and len(found) > limit:
        return found[:limit], True
    return found, False


def _within(outcome: Outcome, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or outcome.updated_at >= since) and (until is None or outcome.updated_at <= until)


# --- commands ------------------------------------------------------------------------------------


def cmd_list(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    outcomes, more = select(
        conn,
        statuses=args.status,
        source=args.source,
        external_id=args.external_id,
        since=args.since,
        until=args.until,
        limit=args.limit or None,
    )
    if not outcomes:
        render.note(console, "No outcomes match.", style="yellow")
        return NOT_FOUND
    console.print(render.outcomes_table(outcomes))
    shown = f"{len(outcomes)} outcome(s), newest first"
    if more:
        shown += f"; more match: raise --limit (now {args.limit}) or narrow with --status/--since"
    render.note(console, shown)
    return OK


def cmd_show(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    outcomes = conn.outcome_store().get(args.tracking_id)
    if not outcomes:
        raise OpsError(
            f"no outcome recorded for {args.tracking_id}",
            exit_code=NOT_FOUND,
            hint="tracking ids look like ob_<32 hex>; find one by the source's order id with "
            "`orderbridge outcomes list --source SRC --external-id ID`",
        )
    deliveries = [o for o in outcomes if o.destination != NO_DESTINATION]
    state = order_state(deliveries or outcomes)
    console.print(
        Text.assemble(
            ("tracking id ", "bold"),
            (args.tracking_id, "bold cyan"),
            f"  ({len(outcomes)} destination(s); the storefront sees ",
            (state.value, "bold"),
            ")",
        )
    )
    for outcome in outcomes:
        console.print(render.outcome_detail(outcome))
    doubtful = [o for o in outcomes if in_doubt(o)]
    failed = [
        o.destination
        for o in outcomes
        if o.status in (OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.DEAD_LETTERED) and not in_doubt(o)
    ]
    now, timeout = datetime.now(UTC), (queue_visibility_timeout(conn) if doubtful else None)
    for outcome in doubtful:
        advice = guidance(outcome, tracking_id=args.tracking_id, now=now, visibility_timeout=timeout)
        render.note(
            console,
            f"In doubt ({outcome.destination}): the provider may have the order"
            + (" (the storefront shows CHECKING)" if state is OrderState.CHECKING else "")
            + f"; {advice.text}",
            style="yellow",
        )
    if failed:
        render.note(
            console,
            f"Failed ({', '.join(failed)}). Fix the cause (see error code), then: "
            f"orderbridge retry {args.tracking_id}",
            style="yellow",
        )
    return OK


def cmd_export(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    outcomes, _ = select(
        conn,
        statuses=args.status,
        source=args.source,
        external_id=args.external_id,
        since=args.since,
        until=args.until,
    )
    outcomes.reverse()  # oldest first: the order things happened in
    if args.output in (None, "-"):
        write_export(outcomes, args.format, sys.stdout)
        sys.stdout.flush()
    else:
        path = Path(args.output)
        try:
            with path.open("w", newline="", encoding="utf-8") as stream:
                write_export(outcomes, args.format, stream)
        except OSError as exc:
            raise OpsError(f"cannot write {path}: {exc.strerror or exc}", exit_code=USAGE) from exc
        render.note(render.make_console(stderr=True), f"wrote {len(outcomes)} row(s) to {path}")
    return OK


def write_export(outcomes: Iterable[Outcome], fmt: str, stream: IO[str]) -> None:
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for outcome in outcomes:
            row = export_row(outcome)
            writer.writerow(["" if row[c] is None else _csv_value(row[c]) for c in EXPORT_COLUMNS])
        return
    for outcome in outcomes:
        row = export_row(outcome)
        row["history"] = [h.model_dump(mode="json") for h in outcome.history]
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def export_row(outcome: Outcome) -> dict[str, Any]:
    """The flat fields, in EXPORT_COLUMNS order, as JSON values."""
    data = outcome.model_dump(mode="json")
    return {column: data.get(column) for column in EXPORT_COLUMNS}


def _csv_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
