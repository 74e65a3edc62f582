"""What an operator should do about a delivery in doubt, by where its event actually is.

One rule for `review list` (a short next step per row) and `outcomes show` (a sentence per
destination), so the two never disagree:

* parked for a person (NEEDS_REVIEW, or the old FAILED_PERMANENT/NEEDS_REVIEW): nothing looks it
  up by itself; check the provider, then `review resolve`.
* DEAD_LETTERED: its event is on the dead-letter queue; `retry` (the dispatcher looks first where
  the provider can be searched), or check and `review resolve`.
* FAILED_RETRYABLE with an unknown result: still in progress. Its event is on the order queue and
  comes back by itself; the dispatcher looks the order up before sending anything. A worker that
  died (ABANDONED) held its message, which SQS hands out again at the order queue's visibility
  timeout after it was taken: that time, when known, is what we say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from orderbridge.exceptions import UnknownProviderError
from orderbridge.models.outcome import Outcome, OutcomeStatus
from orderbridge.providers.registry import get_provider_class
from orderbridge_ops.dlq import in_review
from orderbridge_ops.errors import OpsError
from orderbridge_ops.sweep import ABANDONED


@dataclass(frozen=True)
class Guidance:
    """`step`: a few words for a table cell; `text`: the full sentence; `needs_person`: only a
    person moves it on (check the provider, `review resolve`)."""

    step: str
    text: str
    needs_person: bool


def queue_visibility_timeout(conn: Any) -> int | None:
    """The order queue's visibility timeout in seconds, or None if the queue cannot be read."""
    try:
        url = conn.queue_url
        answer = conn.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
        return int(answer["Attributes"]["VisibilityTimeout"])
    except (OpsError, BotoCoreError, ClientError, KeyError, ValueError):
        return None


def comes_back_at(outcome: Outcome, visibility_timeout: int | None) -> datetime | None:
    """When an abandoned delivery's message is handed out again: its last claim plus the queue's
    visibility timeout (the message was taken just before the claim, so this is a latest time)."""
    if visibility_timeout is None:
        return None
    claims = [h.at for h in outcome.history if h.status is OutcomeStatus.IN_FLIGHT]
    return max(claims) + timedelta(seconds=visibility_timeout) if claims else None


def _can_look_up(provider: str | None) -> bool:
    try:
        return get_provider_class(provider or "").supports_lookup
    except UnknownProviderError:
        return False


def guidance(
    outcome: Outcome, *, tracking_id: str, now: datetime, visibility_timeout: int | None
) -> Guidance:
    """What is true for this delivery in doubt, and what (if anything) an operator does next."""
    resolve = f"orderbridge review resolve {tracking_id} --destination {outcome.destination} ..."
    if in_review(outcome):
        return Guidance(
            "check the provider, then review resolve",
            "parked for review: nothing looks it up by itself. Check the provider (`orderbridge review "
            f"list` says where), then record what you found: {resolve}",
            needs_person=True,
        )
    if outcome.status is OutcomeStatus.DEAD_LETTERED:
        return Guidance(
            "on the DLQ: retry (it looks first where it can), or check and review resolve",
            f"its event is on the dead-letter queue: `orderbridge retry {tracking_id}` (the dispatcher "
            "looks the order up before sending where the provider can be searched), or check the "
            f"provider and {resolve}",
            needs_person=True,
        )
    then = (
        "the dispatcher looks the order up at the provider before sending anything"
        if _can_look_up(outcome.provider)
        else "the provider cannot be searched, so the dispatcher parks it for review (NEEDS_REVIEW)"
    )
    if outcome.error_code != ABANDONED:
        return Guidance(
            "still in progress: the dispatcher looks at the provider before sending again",
            f"still in progress: its event is on the order queue and comes back by itself; {then}. "
            "Nothing to do; watch it with `orderbridge outcomes show`.",
            needs_person=False,
        )
    back = comes_back_at(outcome, visibility_timeout)
    if back is not None and now > back + timedelta(minutes=1):
        when = f"{back:%Y-%m-%d %H:%M:%S} UTC"
        return Guidance(
            f"its worker stopped mid-call; not taken up again by {when}: if on the DLQ, retry",
            f"its worker stopped mid-call and its event was not taken up again by {when} (the queue's "
            "visibility timeout after the claim): that was its last try, so SQS moved it to the "
            f"dead-letter queue, or no dispatcher is running. If it is on the DLQ: "
            f"`orderbridge retry {tracking_id}` ({then}).",
            needs_person=False,
        )
    when = (
        f"by about {back:%Y-%m-%d %H:%M:%S} UTC" if back is not None else "at the queue's visibility timeout"
    )
    return Guidance(
        f"its worker stopped mid-call; still in progress: looked up by itself {when}",
        f"its worker stopped mid-call; still in progress: its event is on the order queue and comes "
        f"back by itself {when}; then {then}. Nothing to do unless it was its last try (then SQS "
        f"moves it to the dead-letter queue: `orderbridge retry {tracking_id}`).",
        needs_person=False,
    )
