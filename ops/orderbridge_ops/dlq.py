"""`orderbridge dlq ...` and `orderbridge retry`: look at the dead-letter queue, send events back.

Two kinds of message land on the dead-letter queue. The dispatcher parks an event whose delivery
failed permanently (or whose body is malformed) with message attributes `tracking_id` and
`reason`; SQS's redrive policy moves an event that ran out of receives, with no attributes. The
tracking id of the latter is read from the body (`OrderEvent.resolved_tracking_id`).

Peeking is receive-then-release: messages are received with a visibility timeout and made
visible again at once (`change_message_visibility` to 0), so nothing is consumed. Messages can be
received more than once (at-least-once delivery); they are keyed by message id and handled once.

A redrive holds its messages hidden only while it lives (`Holder`): received for a short
visibility timeout, extended by a background thread while the command works. A redrive that is
killed hands its messages back within `REDRIVE_VISIBILITY` seconds, so `dlq list` and the DLQ
alarm never see an empty queue that is not empty.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm
from rich.text import Text

from orderbridge.exceptions import CredentialsError
from orderbridge.identity import TrackingIds
from orderbridge.models.event import OrderEvent
from orderbridge.models.outcome import Outcome, OutcomeStatus
from orderbridge_ops import render
from orderbridge_ops.connect import Connection
from orderbridge_ops.errors import NOT_FOUND, OK, USAGE, OpsError

PEEK_VISIBILITY = 20  # seconds a peeked message stays hidden if we die before releasing it
# Seconds a message held by a redrive stays hidden if the redrive dies; extended every third of it
# while the redrive runs (Holder). Short: a killed redrive must not make the DLQ look empty for long.
REDRIVE_VISIBILITY = 30
DEFAULT_MAX = 1000
REOPEN_NOTE = "redriven from the dead-letter queue (orderbridge CLI)"
SQS_REDRIVE_REASON = "max receives (SQS redrive)"
NO_DESTINATION = "-"  # the dispatcher records events it rejects outright under this destination
NEEDS_REVIEW = "NEEDS_REVIEW"  # an earlier attempt may have created the order; nothing could confirm it
REVIEW_COMMAND = (
    "orderbridge review resolve {tid} --destination {destination} "
    "(--created --provider-order-id ID | --not-created) --by NAME --reason TEXT"
)
_IN_PROGRESS = (OutcomeStatus.RECEIVED, OutcomeStatus.IN_FLIGHT, OutcomeStatus.FAILED_RETRYABLE)
_FAILED = (OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.DEAD_LETTERED)


@dataclass
class DeadLetter:
    """One message on the dead-letter queue."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, Any]
    tracking_id: str | None
    reason: str
    readable: bool  # the body is a valid order event
    sent_at: datetime | None
    first_received_at: datetime | None

    @classmethod
    def from_message(cls, message: dict[str, Any], ids: TrackingIds | None = None) -> DeadLetter:
        attributes = message.get("MessageAttributes") or {}
        system = message.get("Attributes") or {}
        body = message.get("Body", "")
        tracking_id, readable = identify(body, attributes, ids)
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=body,
            attributes=attributes,
            tracking_id=tracking_id,
            reason=_string(attributes, "reason") or SQS_REDRIVE_REASON,
            readable=readable,
            sent_at=_epoch_ms(system.get("SentTimestamp")),
            first_received_at=_epoch_ms(system.get("ApproximateFirstReceiveTimestamp")),
        )


def identify(
    body: str, attributes: dict[str, Any], ids: TrackingIds | None = None
) -> tuple[str | None, bool]:
    """(tracking id, whether the body is a valid event): the attribute if set, else from the body
    (an event without one gets the id its identity derives, when `ids` can derive it)."""
    try:
        event = OrderEvent.model_validate_json(body)
        readable = True
    except (ValidationError, ValueError):
        return _string(attributes, "tracking_id"), False
    try:
        derived: str | None = event.tracking_id or (event.resolved_tracking_id(ids) if ids else None)
    except (ValueError, CredentialsError):
        derived = None
    return _string(attributes, "tracking_id") or derived, readable


def _string(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name) or {}
    return value.get("StringValue") or None


def _epoch_ms(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


# --- queue operations ----------------------------------------------------------------------------


def approximate_count(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages on the queue, as SQS estimates them."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs.get("ApproximateNumberOfMessages", 0)), int(
        attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def scan(
    sqs: Any,
    url: str,
    *,
    visibility: int,
    max_messages: int = DEFAULT_MAX,
    ids: TrackingIds | None = None,
    holder: Holder | None = None,
) -> list[DeadLetter]:
    """Receive up to `max_messages` distinct messages, hidden for `visibility` seconds.

    The caller must `release` (or delete) every message returned. With a `holder`, each message
    is handed to it as it arrives, so a long scan does not let the first ones reappear.
    """
    expected, _ = approximate_count(sqs, url)
    seen: dict[str, DeadLetter] = {}
    long_polled = False
    batches_without_news = 0
    while len(seen) < max_messages:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, max_messages - len(seen)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1 if long_polled else 0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            # a short poll samples only some SQS servers: poll long once before believing "empty"
            if len(seen) >= expected or long_polled:
                break
            long_polled = True
            continue
        news = 0
        for message in batch:
            letter = DeadLetter.from_message(message, ids)
            if letter.message_id in seen:
                seen[letter.message_id].receipt_handle = letter.receipt_handle  # the newest one is valid
            else:
                seen[letter.message_id] = letter
                news += 1
                if holder is not None:
                    holder.hold([letter])
        batches_without_news = 0 if news else batches_without_news + 1
        if batches_without_news >= 3:
            break
    return list(seen.values())


def release(sqs: Any, url: str, letters: Iterable[DeadLetter]) -> int:
    """Make messages visible again at once; returns how many could not be (they reappear later)."""
    letters = list(letters)
    failed = 0
    for start in range(0, len(letters), 10):
        chunk = letters[start : start + 10]
        entries = [
            {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
            for i, letter in enumerate(chunk)
        ]
        try:
            answer = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            failed += len(answer.get("Failed", []))
        except (ClientError, BotoCoreError):
            failed += len(chunk)
    return failed


class Holder:
    """Keeps received messages hidden while this process works on them, and only while it lives.

    A background thread extends the visibility of every held message to `visibility` seconds,
    every third of that. Killed, the process stops extending, and the messages reappear within
    `visibility` seconds. On exit, whatever is still held is made visible again at once.
    """

    def __init__(self, sqs: Any, url: str, *, visibility: int | None = None) -> None:
        self.sqs = sqs
        self.url = url
        self.visibility = visibility or REDRIVE_VISIBILITY
        self._held: dict[str, DeadLetter] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_hidden, name="dlq-holder", daemon=True)

    def hold(self, letters: Iterable[DeadLetter]) -> None:
        with self._lock:
            self._held.update((letter.message_id, letter) for letter in letters)

    def drop(self, letter: DeadLetter) -> None:
        """Stop holding a message (it was deleted)."""
        with self._lock:
            self._held.pop(letter.message_id, None)

    def release(self, letters: Iterable[DeadLetter]) -> int:
        """Stop holding these and make them visible at once; returns how many could not be."""
        letters = list(letters)
        for letter in letters:
            self.drop(letter)
        return release(self.sqs, self.url, letters)

    def __enter__(self) -> Holder:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.visibility)
        with self._lock:
            left = list(self._held.values())
        self.release(left)

    def _keep_hidden(self) -> None:
        while not self._stop.wait(self.visibility / 3):
            with self._lock:
                letters = list(self._held.values())
            for start in range(0, len(letters), 10):
                if self._stop.is_set():
                    return
                chunk = letters[start : start + 10]
                entries = [
                    {"Id": str(i), "ReceiptHandle": ltr.receipt_handle, "VisibilityTimeout": self.visibility}
                    for i, ltr in enumerate(chunk)
                ]
                try:
                    answer = self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
                except (ClientError, BotoCoreError):
                    continue  # try again next round; the visibility left covers one miss
                for failed in answer.get("Failed", []):
                    self.drop(chunk[int(failed["Id"])])  # deleted meanwhile, or no longer ours


def resend_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Message attributes as SendMessage takes them (received ones carry empty list fields)."""
    out = {}
    for name, value in attributes.items():
        kept = {k: value[k] for k in ("DataType", "StringValue", "BinaryValue") if k in value}
        if "DataType" in kept and len(kept) > 1:
            out[name] = kept
    return out


def in_review(outcome: Outcome) -> bool:
    """Parked for a person: NEEDS_REVIEW, or the same parked the old way (FAILED_PERMANENT with
    error code NEEDS_REVIEW, from before the status existed)."""
    return outcome.status is OutcomeStatus.NEEDS_REVIEW or (
        outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code == NEEDS_REVIEW
    )


def in_doubt(outcome: Outcome) -> bool:
    """May exist at the provider, and nothing has confirmed it either way (`review list`)."""
    return in_review(outcome) or (
        outcome.unknown_result
        and outcome.status in (OutcomeStatus.DEAD_LETTERED, OutcomeStatus.FAILED_RETRYABLE)
    )


class NeedsReviewError(Exception):
    """Reopening would let the dispatcher send a create that may duplicate an existing order."""

    def __init__(self, tracking_id: str, destinations: list[str]) -> None:
        self.tracking_id = tracking_id
        self.destinations = destinations
        super().__init__(
            f"{', '.join(destinations)}: {NEEDS_REVIEW}: an earlier attempt may have created the order "
            f"and nothing could confirm it, so it is not sent again. Look for an order referencing "
            f"{tracking_id} at the provider, then record what you found: "
            + REVIEW_COMMAND.format(tid=tracking_id, destination=destinations[0])
            + " (--not-created also sends it)"
        )


def reopen(
    conn: Connection,
    tracking_id: str,
    destination: str | None = None,
    *,
    note: str = REOPEN_NOTE,
) -> list[str]:
    """Reopen the order's failed deliveries (or just `destination`); returns which were reopened.

    The dispatcher's rejection records (destination "-": unknown route, malformed body) are
    left as they are: they record a rejected attempt, not a delivery that a retry could finish.
    A delivery parked for review is never reopened here (NeedsReviewError): once reopened, the
    dispatcher could send the create again. `orderbridge review resolve` records what a person
    found; resolved as not created, it is retryable and its event is simply redriven.
    """
    store = conn.outcome_store()
    targets = [
        o
        for o in store.get(tracking_id)
        if o.destination != NO_DESTINATION and destination in (None, o.destination)
    ]
    parked = [o.destination for o in targets if in_review(o)]
    if parked:
        raise NeedsReviewError(tracking_id, parked)
    reopened = []
    for outcome in targets:
        if outcome.status in _FAILED:
            reopened += store.reopen(tracking_id=tracking_id, destination=outcome.destination, note=note)
    return reopened


@dataclass
class Result:
    letter: DeadLetter
    result: str  # "redriven" | "skipped" | "error"
    note: str
    deleted: bool = False


def redrive_one(
    conn: Connection,
    letter: DeadLetter,
    *,
    reopened: set[str],
    destination: str | None = None,
) -> Result:
    """Reopen the order's failed deliveries, send the event to the order queue, delete it here."""
    notes = []
    if letter.readable and letter.tracking_id and letter.tracking_id not in reopened:
        try:
            destinations = reopen(conn, letter.tracking_id, destination)
        except NeedsReviewError as exc:
            return Result(letter, "skipped", f"left on the dead-letter queue: {exc}")
        except (ClientError, BotoCoreError) as exc:
            return Result(letter, "error", f"could not reopen, left on the dead-letter queue: {exc}")
        reopened.add(letter.tracking_id)
        notes.append(
            f"reopened {', '.join(destinations)}" if destinations else "sent; nothing needed reopening"
        )
    elif not letter.readable:
        notes.append("body is not a valid order event: the dispatcher will reject it again")
    try:
        conn.sqs.send_message(
            QueueUrl=conn.queue_url,
            MessageBody=letter.body,
            MessageAttributes=resend_attributes(letter.attributes),
        )
    except (ClientError, BotoCoreError) as exc:
        return Result(letter, "error", f"not sent, left on the dead-letter queue: {exc}")
    try:
        conn.sqs.delete_message(QueueUrl=conn.dlq_url, ReceiptHandle=letter.receipt_handle)
    except (ClientError, BotoCoreError) as exc:
        return Result(
            letter,
            "error",
            f"sent, but still on the dead-letter queue ({exc}); redriving it again is harmless: "
            "the dispatcher does not create a second order",
        )
    return Result(letter, "redriven", "; ".join(notes), deleted=True)


def redrive_order(
    conn: Connection, tracking_id: str, *, destination: str | None = None, max_messages: int = DEFAULT_MAX
) -> list[Result]:
    """Redrive one order's dead-letter messages (reopening first); [] if none is on the queue."""
    with Holder(conn.sqs, conn.dlq_url) as holder:
        letters = scan(
            conn.sqs,
            conn.dlq_url,
            visibility=holder.visibility,
            max_messages=max_messages,
            ids=conn.tracking_ids(),
            holder=holder,
        )
        mine = [letter for letter in letters if letter.tracking_id == tracking_id]
        holder.release(letter for letter in letters if letter.tracking_id != tracking_id)
        results: list[Result] = []
        reopened: set[str] = set()
        for letter in mine:
            result = redrive_one(conn, letter, reopened=reopened, destination=destination)
            if result.deleted:
                holder.drop(letter)
            results.append(result)
    return results


# --- commands ------------------------------------------------------------------------------------


def cmd_list(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    letters = scan(
        conn.sqs, conn.dlq_url, visibility=PEEK_VISIBILITY, max_messages=args.max, ids=conn.tracking_ids()
    )
    release(conn.sqs, conn.dlq_url, letters)
    if not letters:
        render.note(console, "The dead-letter queue is empty.", style="green")
        return OK
    letters.sort(key=lambda letter: letter.sent_at or datetime.min.replace(tzinfo=UTC))
    console.print(render.dead_letters_table(letters))
    more = " (stopped at --max; there may be more)" if len(letters) >= args.max else ""
    render.note(console, f"{len(letters)} message(s) on the dead-letter queue{more}", style="bold")
    render.note(
        console,
        "After fixing the cause: orderbridge dlq redrive --id TRACKING_ID ... (or --all). "
        "Details: orderbridge outcomes show TRACKING_ID",
    )
    return OK


def cmd_redrive(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    _refuse_reviewed(args)
    wanted = list(dict.fromkeys(args.id or []))
    results: list[Result] = []
    with Holder(conn.sqs, conn.dlq_url) as holder:  # hidden by us until deleted, released or we die
        letters = scan(
            conn.sqs,
            conn.dlq_url,
            visibility=holder.visibility,
            max_messages=args.max,
            ids=conn.tracking_ids(),
            holder=holder,
        )
        if wanted:
            chosen = [letter for letter in letters if letter.tracking_id in wanted]
        else:
            chosen = [letter for letter in letters if letter.readable]
            results += [
                Result(letter, "skipped", "not a valid order event; redrive it with --id if you mean it")
                for letter in letters
                if not letter.readable
            ]
        chosen_ids = {letter.message_id for letter in chosen}
        holder.release(letter for letter in letters if letter.message_id not in chosen_ids)
        missing = [tid for tid in wanted if not any(c.tracking_id == tid for c in chosen)]
        for tid in missing:
            render.note(console, f"not on the dead-letter queue: {tid}", style="yellow")
        if not chosen:
            render.note(console, "Nothing to redrive.", style="yellow")
            if results:
                console.print(render.results_table(_rows(results)))
            return NOT_FOUND
        console.print(render.dead_letters_table(chosen, title="to redrive"))
        if not args.yes and sys.stdin.isatty():
            question = f"Reopen and send {len(chosen)} message(s) back to the order queue?"
            if not Confirm.ask(question, console=console, default=False):
                render.note(console, "Nothing redriven.", style="yellow")
                return NOT_FOUND
        reopened: set[str] = set()
        with _progress(console) as progress:
            task = progress.add_task("redriving", total=len(chosen))
            for letter in chosen:
                result = redrive_one(conn, letter, reopened=reopened)
                if result.deleted:
                    holder.drop(letter)
                results.append(result)
                progress.advance(task)
    code = report(console, results, partial=bool(missing))
    _point_to_review(console, results)
    return code


def cmd_retry(conn: Connection, args: argparse.Namespace, console: Console) -> int:
    _refuse_reviewed(args)
    tid, destination = args.tracking_id, args.destination
    store = conn.outcome_store()
    outcomes = store.get(tid)
    if destination and outcomes and destination not in {o.destination for o in outcomes}:
        raise OpsError(
            f"{tid} has no destination {destination!r}",
            exit_code=NOT_FOUND,
            hint="its destinations: " + ", ".join(o.destination for o in outcomes),
        )
    if args.reopen_only:
        try:
            reopened = reopen(conn, tid, destination, note="reopened to re-send the event (orderbridge CLI)")
        except NeedsReviewError as exc:
            raise OpsError(str(exc), exit_code=NOT_FOUND) from exc
        if not reopened:
            render.note(console, f"Nothing to reopen: no failed delivery of {tid}.", style="yellow")
            return NOT_FOUND
        render.note(
            console, f"Reopened {', '.join(reopened)}. Now send the event to the order queue.", style="green"
        )
        return OK
    results = redrive_order(conn, tid, destination=destination, max_messages=args.max)
    if not results:
        _explain_not_on_dlq(console, tid, outcomes)
        return NOT_FOUND
    code = report(console, results, partial=False)
    _point_to_review(console, results)
    render.note(console, f"Follow it with: orderbridge outcomes show {tid}")
    return code


# --- helpers -------------------------------------------------------------------------------------


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _refuse_reviewed(args: argparse.Namespace) -> None:
    """`--reviewed` used to send a NEEDS_REVIEW delivery again on the operator's word alone."""
    if getattr(args, "reviewed", False):
        raise OpsError(
            "--reviewed is no longer accepted: a delivery parked for review is sent again only once "
            "someone has recorded that the provider has no order for it",
            exit_code=USAGE,
            hint="orderbridge review list; then orderbridge review resolve TRACKING_ID --not-created "
            "--by NAME --reason TEXT (it redrives the event itself)",
        )


def _point_to_review(console: Console, results: list[Result]) -> None:
    if any("review resolve" in r.note for r in results if r.result == "skipped"):
        render.note(
            console,
            "Skipped deliveries are parked for review: check the provider (orderbridge review list "
            "says where), then orderbridge review resolve.",
            style="yellow",
        )


def _rows(results: Iterable[Result]) -> list[tuple[str, str | None, str, str]]:
    return [(r.letter.message_id, r.letter.tracking_id, r.result, r.note) for r in results]


def report(console: Console, results: list[Result], *, partial: bool) -> int:
    counts = {"redriven": 0, "skipped": 0, "errors": 0}
    for r in results:
        counts["errors" if r.result == "error" else r.result] += 1
    console.print(render.results_table(_rows(results)))
    console.print(render.summary_line(counts))
    if counts["redriven"]:
        render.note(console, "The dispatcher picks the events up from the order queue as usual.")
    done = counts["redriven"] and not counts["errors"] and not counts["skipped"] and not partial
    return OK if done else NOT_FOUND


def _explain_not_on_dlq(console: Console, tid: str, outcomes: list[Outcome]) -> None:
    console.print(Text.assemble((f"{tid} is not on the dead-letter queue.", "bold yellow")))
    if not outcomes:
        render.note(
            console,
            "No outcome is recorded for it either: check the id (orderbridge outcomes list "
            "--source SRC --external-id ID finds an order by its source's id).",
        )
        return
    console.print(render.outcomes_table(outcomes))
    statuses = {o.status for o in outcomes}
    parked = [o.destination for o in outcomes if in_review(o)]
    if parked:
        render.note(
            console,
            f"{', '.join(parked)}: parked for review (the provider may have the order). Check the "
            "provider, then: " + REVIEW_COMMAND.format(tid=tid, destination=parked[0]),
            style="yellow",
        )
        return
    if statuses == {OutcomeStatus.SUCCEEDED}:
        render.note(console, "Every destination SUCCEEDED: nothing to retry.")
    elif statuses & set(_IN_PROGRESS):
        render.note(
            console,
            "It is still in progress: the dispatcher retries it by itself (with backoff) until it "
            f"succeeds or runs out of tries. Watch it with: orderbridge outcomes show {tid}",
        )
    if statuses & set(_FAILED):
        render.note(
            console,
            "Its event is no longer on the dead-letter queue (already redriven, deleted, or past the "
            "queue's 14-day retention). If you have the event: fix the cause, run "
            f"`orderbridge retry {tid} --reopen-only`, then send the event to the order queue again; "
            "the same tracking id means no second provider order.",
        )
