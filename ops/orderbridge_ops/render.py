"""Everything that draws: consoles, tables, times, statuses, errors.

Data is always wrapped in `Text`, never passed as a string, so that brackets in error messages or
order ids are shown as they are and never read as rich markup.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from orderbridge.models.outcome import Outcome, OutcomeStatus

if TYPE_CHECKING:
    from orderbridge_ops.dlq import DeadLetter

_STATUS_STYLES = {
    OutcomeStatus.RECEIVED: "cyan",
    OutcomeStatus.IN_FLIGHT: "blue",
    OutcomeStatus.SUCCEEDED: "green",
    OutcomeStatus.FAILED_RETRYABLE: "yellow",
    OutcomeStatus.FAILED_PERMANENT: "bold red",
    OutcomeStatus.DEAD_LETTERED: "bold magenta",
    OutcomeStatus.NEEDS_REVIEW: "bold yellow",
}
_OPTIONAL_FIELDS = frozenset({"provider reference", "redirect url", "unknown result", "unknown since"})
_WIDTH_WHEN_PIPED = 160  # tracking ids are 35 characters; 80 columns would wrap them


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr); wide when piped unless COLUMNS says otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(file=stream, width=_WIDTH_WHEN_PIPED if wide else None, stderr=stderr)


def cell(value: Any) -> Text:
    if value is None or value == "":
        return Text("-", style="dim")
    if isinstance(value, datetime):
        return Text(when(value))
    return Text(str(value))


def when(value: datetime | None) -> str:
    """UTC, to the second, with a Z: the same on every operator's screen."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def status_text(status: OutcomeStatus | str) -> Text:
    try:
        status = OutcomeStatus(status)
    except ValueError:
        return Text(str(status))
    return Text(status.value, style=_STATUS_STYLES.get(status, ""))


# --- outcomes ------------------------------------------------------------------------------------


def outcomes_table(outcomes: Iterable[Outcome], *, title: str | None = None) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("tracking id", no_wrap=True)
    table.add_column("destination", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("provider order id")
    table.add_column("error code")
    table.add_column("updated", no_wrap=True)
    for o in outcomes:
        table.add_row(
            cell(o.tracking_id),
            cell(o.destination),
            status_text(o.status),
            cell(o.attempts),
            cell(o.provider_order_id),
            cell(o.error_code),
            cell(o.updated_at),
        )
    return table


def outcome_detail(outcome: Outcome) -> Group:
    """One destination's record: its fields, then its history."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column()
    rows: list[tuple[str, Any]] = [
        ("status", status_text(outcome.status)),
        ("provider", outcome.provider),
        ("route", outcome.route),
        ("source", outcome.source),
        ("external order id", outcome.external_order_id),
        ("attempts", outcome.attempts),
        ("provider order id", outcome.provider_order_id),
        ("provider reference", outcome.provider_reference),
        ("redirect url", outcome.redirect_url),
        ("http status", outcome.http_status),
        ("error code", outcome.error_code),
        ("error message", outcome.error_message),
        ("unknown result", "yes: the provider may have the order" if outcome.unknown_result else None),
        ("unknown since", outcome.unknown_since),
        ("created", outcome.created_at),
        ("updated", outcome.updated_at),
    ]
    for name, value in rows:
        if value is None and name in _OPTIONAL_FIELDS:
            continue
        fields.add_row(name, value if isinstance(value, Text) else cell(value))
    title = Text.assemble(("destination ", "bold"), (outcome.destination, "bold cyan"))
    return Group(Text(""), title, fields, history_table(outcome))


def history_table(outcome: Outcome) -> Table:
    table = Table(title="history", box=box.SIMPLE, title_justify="left")
    table.add_column("time", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempt", justify="right")
    table.add_column("http", justify="right")
    table.add_column("code")
    table.add_column("by")  # the operator, for entries a person recorded (review resolve)
    table.add_column("note")
    for entry in outcome.history:
        table.add_row(
            cell(entry.at),
            status_text(entry.status),
            cell(entry.attempt),
            cell(entry.http_status),
            cell(entry.error_code),
            cell(entry.by),
            cell(entry.note),
        )
    return table


def review_table(outcomes: Iterable[Outcome], *, next_step: Callable[[Outcome], str]) -> Table:
    """Deliveries in doubt: where, since when, and what to do next."""
    table = Table(box=box.SIMPLE_HEAVY, title="deliveries in doubt", title_justify="left")
    table.add_column("tracking id", no_wrap=True)
    table.add_column("destination", no_wrap=True)
    table.add_column("provider", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("code")
    table.add_column("attempts", justify="right")
    table.add_column("in doubt since", no_wrap=True)
    table.add_column("next step")
    for o in outcomes:
        table.add_row(
            cell(o.tracking_id),
            cell(o.destination),
            cell(o.provider),
            status_text(o.status),
            cell(o.error_code),
            cell(o.attempts),
            cell(o.unknown_since or o.updated_at),
            cell(next_step(o)),
        )
    return table


def stalled_table(rows: Iterable[tuple[Outcome, str]], *, title: str) -> Table:
    """(record as it was, the code it gets) per stalled delivery."""
    table = Table(box=box.SIMPLE_HEAVY, title=title, title_justify="left")
    table.add_column("tracking id", no_wrap=True)
    table.add_column("destination", no_wrap=True)
    table.add_column("was", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("last change", no_wrap=True)
    table.add_column("lease until", no_wrap=True)
    for o, code in rows:
        table.add_row(
            cell(o.tracking_id),
            cell(o.destination),
            status_text(o.status),
            cell(code),
            cell(o.attempts),
            cell(o.updated_at),
            cell(o.lease_until),
        )
    return table


# --- dead-letter queue ---------------------------------------------------------------------------


def dead_letters_table(letters: Iterable[DeadLetter], *, title: str | None = None) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("message id", no_wrap=True)
    table.add_column("tracking id", no_wrap=True)
    table.add_column("reason")
    table.add_column("sent", no_wrap=True)
    table.add_column("first received", no_wrap=True)
    for letter in letters:
        table.add_row(
            cell(letter.message_id),
            cell(letter.tracking_id) if letter.tracking_id else Text("(unreadable body)", style="red"),
            cell(letter.reason),
            cell(letter.sent_at),
            cell(letter.first_received_at),
        )
    return table


def results_table(rows: Iterable[tuple[str, str | None, str, str]]) -> Table:
    """(message id, tracking id, result, note) per processed message."""
    styles = {"redriven": "green", "skipped": "yellow", "error": "bold red"}
    table = Table(box=box.SIMPLE, title="results", title_justify="left")
    table.add_column("message id", no_wrap=True)
    table.add_column("tracking id", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("note")
    for message_id, tracking_id, result, note in rows:
        table.add_row(
            cell(message_id), cell(tracking_id), Text(result, style=styles.get(result, "")), cell(note)
        )
    return table


def summary_line(counts: dict[str, int]) -> Text:
    parts = [
        ("redriven", "green"),
        ("skipped", "yellow"),
        ("errors", "bold red"),
    ]
    text = Text("summary: ", style="bold")
    for i, (name, style) in enumerate(parts):
        if i:
            text.append(", ")
        text.append(f"{name} {counts.get(name, 0)}", style=style if counts.get(name) else "")
    return text


# --- messages ------------------------------------------------------------------------------------


def error(console: Console, message: str, hint: str | None = None) -> None:
    console.print(Text.assemble(("error: ", "bold red"), message))
    if hint:
        console.print(Text.assemble(("hint: ", "bold"), hint))


def note(console: Console, message: str, style: str = "dim") -> None:
    console.print(Text(message, style=style))
