"""`orderbridge sweep`: mark deliveries nobody is acting on, as the scheduled sweeper does.

The sweeper function (functions/sweeper) runs `OutcomeStore.sweep` every 5 minutes; this is the
same call by hand, or with `--dry-run` the same selection without writing.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from rich.console import Console

from orderbridge.models.outcome import Outcome, OutcomeStatus
from orderbridge.outcomes import OutcomeStore
from orderbridge_ops import render
from orderbridge_ops.connect import Connection
from orderbridge_ops.errors import OK

NOT_STARTED = "NOT_STARTED"
ABANDONED = "ABANDONED"
_WHAT_NEXT = {
    NOT_STARTED: "NOT_STARTED: accepted, but no dispatcher ever took it up. If its event is on the "
    "dead-letter queue: orderbridge retry TRACKING_ID. If not, the event was lost before the "
    "queue: have the sender send it again (the same order gets the same tracking id: one order).",
    ABANDONED: "ABANDONED: a worker stopped in the middle of sending it, so the provider may have "
    "the order (unknown result). Its event comes back by itself or is on the dead-letter queue "
    "(orderbridge retry TRACKING_ID); the next attempt looks at the provider before sending, and "
    "where it cannot, parks it for review (orderbridge review list).",
}


def stall_code(outcome: Outcome) -> str:
    """The code a record gets from the sweep, by its status before it."""
    return NOT_STARTED if outcome.status is OutcomeStatus.RECEIVED else ABANDONED


def stalled(store: OutcomeStore, *, older_than: timedelta, now: datetime) -> list[Outcome]:
    """What `OutcomeStore.sweep` would mark at `now` (its selection, without writing)."""
    received = store.list_by_status(OutcomeStatus.RECEIVED, until=now - older_than)
    abandoned = [
        o
        for o in store.list_by_status(OutcomeStatus.IN_FLIGHT, until=now)
        if o.lease_until is not None and o.lease_until < now
    ]
    return received + abandoned


def cmd_sweep(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    older_than = timedelta(seconds=args.older_than)
    store = conn.outcome_store()
    if args.dry_run:
        found = stalled(store, older_than=older_than, now=datetime.now(UTC))
    else:
        found = store.sweep(received_older_than=older_than)
    verb = "would mark" if args.dry_run else "marked"
    if not found:
        render.note(console, f"Nothing stalled: {verb} 0 record(s).", style="green")
        return OK
    rows = [(o, stall_code(o)) for o in found]
    console.print(render.stalled_table(rows, title=f"{verb} FAILED_RETRYABLE"))
    render.note(console, f"{verb} {len(rows)} record(s)", style="bold")
    for code in sorted({code for _, code in rows}, reverse=True):
        render.note(console, _WHAT_NEXT[code])
    if args.dry_run:
        render.note(console, "Dry run: nothing was written. Run again without --dry-run to mark them.")
    return OK
