"""`orderbridge review ...`: deliveries in doubt, and what a person found at the provider.

A delivery is in doubt when an earlier attempt may have created the provider order and nothing
has confirmed it either way: NEEDS_REVIEW (the dispatcher gave up looking, or the provider cannot
be searched), the same parked the old way (FAILED_PERMANENT with error code NEEDS_REVIEW), and
DEAD_LETTERED or FAILED_RETRYABLE with an unknown result. The storefront shows such an order as
CHECKING. Nothing sends it again until a person has looked at the provider and said what they
found (`review resolve`), with their name and reason kept in the record's history.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime

from rich.console import Console
from rich.text import Text

from orderbridge.exceptions import OutcomeConflictError, ReviewError
from orderbridge.models.outcome import Outcome, OutcomeStatus
from orderbridge_ops import dlq, outcomes, render
from orderbridge_ops.connect import Connection
from orderbridge_ops.errors import NOT_FOUND, OK, USAGE, OpsError
from orderbridge_ops.guidance import guidance, queue_visibility_timeout

#: Where a person looks for an order that carries the tracking id, per provider.
PROVIDER_CHECKS = {
    "bigcommerce": "BigCommerce: an order whose external_order_id is the tracking id "
    "(admin order search, or GET /v2/orders?external_order_id=TRACKING_ID)",
    "komerza": "Komerza: an order whose metadata orderbridge_tracking_id is the tracking id "
    "(dashboard orders; Komerza's API cannot search by it)",
    "threekit": 'Threekit: an order whose platform id is the tracking id (GET /api/orders?platform={"id": '
    '"TRACKING_ID"})',
    "lana": "Lana: an order tagged orderbridge:TRACKING_ID (orders list, filter by tag)",
}
_OTHER_PROVIDER = "{provider}: an order that carries the tracking id (see its adapter for where it goes)"
_DOUBT_STATUSES = (
    OutcomeStatus.NEEDS_REVIEW,
    OutcomeStatus.FAILED_PERMANENT,
    OutcomeStatus.DEAD_LETTERED,
    OutcomeStatus.FAILED_RETRYABLE,
)


def where_to_look(provider: str | None) -> str:
    return PROVIDER_CHECKS.get(provider or "", _OTHER_PROVIDER.format(provider=provider or "?"))


def next_step(outcome: Outcome) -> str:
    """The review table's next step, without the queue's timing (see guidance.guidance)."""
    return guidance(
        outcome, tracking_id=outcome.tracking_id, now=datetime.now(UTC), visibility_timeout=None
    ).step


# --- commands ------------------------------------------------------------------------------------


def cmd_list(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    found = [
        o
        for status in _DOUBT_STATUSES
        for o in outcomes.query_status(conn.dynamodb, conn.table, status, since=args.since, until=args.until)
        if dlq.in_doubt(o)
    ]
    if not found:
        render.note(console, "No delivery is in doubt.", style="green")
        return OK
    found.sort(key=lambda o: (o.unknown_since or o.updated_at, o.tracking_id, o.destination))
    now, timeout = datetime.now(UTC), queue_visibility_timeout(conn)
    advice = {
        (o.tracking_id, o.destination): guidance(
            o, tracking_id=o.tracking_id, now=now, visibility_timeout=timeout
        )
        for o in found
    }
    console.print(render.review_table(found, next_step=lambda o: advice[o.tracking_id, o.destination].step))
    render.note(console, f"{len(found)} delivery(ies) in doubt, oldest first", style="bold")
    render.note(
        console, "The storefront shows these orders as CHECKING: the buyer is told not to order again."
    )
    for_person = [o for o in found if advice[o.tracking_id, o.destination].needs_person]
    if len(for_person) < len(found):
        render.note(
            console,
            f"{len(found) - len(for_person)} still in progress: the dispatcher looks each up at its "
            "provider by itself (the next step says when); nothing to do unless it says otherwise.",
        )
    if not for_person:
        return OK
    render.note(console, "Where to look, for the ones a person checks:")
    for provider in sorted({o.provider or "?" for o in for_person}):
        render.note(console, "  " + where_to_look(provider))
    render.note(
        console,
        "Then record what you found: orderbridge review resolve TRACKING_ID [--destination D] "
        "(--created --provider-order-id ID | --not-created) --by NAME --reason TEXT",
    )
    return OK


def cmd_resolve(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    tid = args.tracking_id
    by, reason = (args.by or "").strip(), (args.reason or "").strip()
    if not by or not reason:
        raise OpsError("--by and --reason must say who resolved it and why", exit_code=USAGE)
    if args.created and not (args.provider_order_id or "").strip():
        raise OpsError(
            "--created needs --provider-order-id: the provider's id of the order you found",
            exit_code=USAGE,
        )
    if args.not_created and args.provider_order_id:
        raise OpsError("--provider-order-id goes with --created, not --not-created", exit_code=USAGE)
    store = conn.outcome_store()
    outcome = _target(tid, args.destination, store.get(tid))
    if outcome.status is OutcomeStatus.FAILED_PERMANENT:  # parked the old way: NEEDS_REVIEW it is
        store.adopt_legacy_review(tracking_id=tid, destination=outcome.destination)
    try:
        resolved = store.resolve_review(
            tracking_id=tid,
            destination=outcome.destination,
            created=args.created,
            by=by,
            reason=reason,
            provider_order_id=args.provider_order_id.strip() if args.created else None,
        )
    except ReviewError as exc:
        raise OpsError(str(exc), exit_code=NOT_FOUND) from exc
    except OutcomeConflictError as exc:
        raise OpsError(str(exc), exit_code=NOT_FOUND, hint=f"orderbridge outcomes show {tid}") from exc
    console.print(render.outcome_detail(resolved))
    if args.created:
        render.note(
            console,
            f"Recorded as created by the provider (order {resolved.provider_order_id}): "
            f"{resolved.destination} is SUCCEEDED and is never sent again. A copy of its event left on "
            "the dead-letter queue is now harmless; `orderbridge retry` clears it.",
            style="green",
        )
        return OK
    render.note(console, f"Recorded as not created: {resolved.destination} is retryable. Sending it now.")
    results = dlq.redrive_order(conn, tid, destination=resolved.destination, max_messages=args.max)
    if not results:
        console.print(
            Text.assemble(
                (f"{tid} is not on the dead-letter queue: nothing was sent.", "bold yellow"),
            )
        )
        render.note(
            console,
            "The record now says not created and retryable, so the next copy of its event that "
            "reaches the dispatcher sends it. If the dispatcher is still retrying it, nothing more "
            "is needed (watch: orderbridge outcomes show " + tid + "). Otherwise its event is gone "
            "(redriven or deleted before, or past the 14-day retention): send the event to the order "
            "queue again (same tracking id: at most one order), or ask the storefront to resubmit it.",
        )
        return NOT_FOUND
    code = dlq.report(console, results, partial=False)
    render.note(console, f"Follow it with: orderbridge outcomes show {tid}")
    return code


def _target(tid: str, destination: str | None, found: list[Outcome]) -> Outcome:
    """The delivery to resolve: `destination`, else the order's only one in doubt."""
    if not found:
        raise OpsError(
            f"no outcome recorded for {tid}",
            exit_code=NOT_FOUND,
            hint="orderbridge review list shows the deliveries in doubt",
        )
    if destination is not None:
        for outcome in found:
            if outcome.destination == destination:
                _require_doubt(outcome)
                return outcome
        raise OpsError(
            f"{tid} has no destination {destination!r}",
            exit_code=NOT_FOUND,
            hint="its destinations: " + ", ".join(o.destination for o in found),
        )
    doubtful = [o for o in found if dlq.in_doubt(o)]
    if len(doubtful) > 1:
        raise OpsError(
            f"{tid} has {len(doubtful)} deliveries in doubt: say which with --destination",
            exit_code=USAGE,
            hint="in doubt: " + ", ".join(o.destination for o in doubtful),
        )
    if not doubtful:
        raise _nothing_to_resolve(found)
    return doubtful[0]


def _require_doubt(outcome: Outcome) -> None:
    if not dlq.in_doubt(outcome):
        raise _nothing_to_resolve([outcome])


def _nothing_to_resolve(rows: Iterable[Outcome]) -> OpsError:
    states = ", ".join(
        f"{o.destination} {o.status.value}{' (unknown result)' if o.unknown_result else ''}" for o in rows
    )
    return OpsError(
        f"nothing to resolve: {states}",
        exit_code=NOT_FOUND,
        hint="only a delivery in doubt can be resolved (orderbridge review list); a failed one is "
        "retried with orderbridge retry",
    )
