"""Outcome records: one per order and destination, the record of what happened to it."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class OutcomeStatus(StrEnum):
    RECEIVED = "RECEIVED"
    IN_FLIGHT = "IN_FLIGHT"
    SUCCEEDED = "SUCCEEDED"
    FAILED_RETRYABLE = "FAILED_RETRYABLE"
    FAILED_PERMANENT = "FAILED_PERMANENT"
    DEAD_LETTERED = "DEAD_LETTERED"
    # An earlier attempt may have created the order and nothing could confirm it either way (the
    # provider has no lookup, or the tries ran out while it was being checked). Not retried by
    # itself and never reported as failed: a person records what they found (`orderbridge review`).
    NEEDS_REVIEW = "NEEDS_REVIEW"
    # Recorded, deliberately not sent: the source's test order or a cancelled one (per the source's
    # configuration). Final; `error_code` says why (TEST_ORDER, CANCELLED).
    SKIPPED = "SKIPPED"

    @property
    def is_final(self) -> bool:
        """Nothing more happens to the delivery without an operator."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        OutcomeStatus.SUCCEEDED,
        OutcomeStatus.FAILED_PERMANENT,
        OutcomeStatus.DEAD_LETTERED,
        OutcomeStatus.NEEDS_REVIEW,
        OutcomeStatus.SKIPPED,
    }
)


_MAY_EXIST = frozenset({OutcomeStatus.IN_FLIGHT, OutcomeStatus.FAILED_RETRYABLE, OutcomeStatus.DEAD_LETTERED})


class OrderState(StrEnum):
    """What a storefront is told about its order (the status endpoint's `status`).

    The promise to a buyer: FAILED only when no destination has the order and none can still get
    it (ordering again is then safe); PARTIAL and CHECKING mean "do not order again".
    """

    PENDING = "PENDING"  # on its way: queued, being sent, or retrying after a definite failure
    SUCCEEDED = "SUCCEEDED"  # created at every destination it was meant for (SKIPPED ones aside)
    CHECKING = "CHECKING"  # may already exist: being confirmed with the provider, or by a person
    PARTIAL = "PARTIAL"  # created at some destinations, failed at others: received, operators are on it
    FAILED = "FAILED"  # created nowhere, and will not be without a fix: safe to order again
    SKIPPED = "SKIPPED"  # recorded, deliberately not sent (a test order)


#: What each state tells a storefront, written once: the OpenAPI description and the README are
#: checked against it (tests/test_order_state.py).
ORDER_STATE_MEANING: dict[OrderState, str] = {
    OrderState.PENDING: "on its way (queued, being sent, or retrying)",
    OrderState.SUCCEEDED: "created at every destination (a destination that deliberately skipped it aside)",
    OrderState.CHECKING: "it may already exist and is being confirmed (with the provider, or by a "
    "person): do not order again",
    OrderState.PARTIAL: "created at some destinations and failed at others; the order was received "
    "and operators are completing it: do not order again",
    OrderState.FAILED: "created at no destination, and will not be without a fix",
    OrderState.SKIPPED: "recorded, deliberately not sent (a test or cancelled order)",
}

_FAILED = frozenset({OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.DEAD_LETTERED})


def _may_exist(outcome: Outcome, now: datetime) -> bool:
    """The provider may have this delivery's order and nothing has confirmed it either way."""
    return (
        outcome.status is OutcomeStatus.NEEDS_REVIEW
        # parked for review the old way, before NEEDS_REVIEW existed
        or (
            outcome.status is OutcomeStatus.FAILED_PERMANENT
            and outcome.error_code == OutcomeStatus.NEEDS_REVIEW.value
        )
        or (outcome.unknown_result and outcome.status in _MAY_EXIST)
        # its worker stopped mid-delivery (the lease ran out): it may have been sent
        or (
            outcome.status is OutcomeStatus.IN_FLIGHT
            and outcome.lease_until is not None
            and outcome.lease_until < now
        )
    )


def order_state(outcomes: list[Outcome], *, now: datetime | None = None) -> OrderState:
    """One state for an order from its destinations' outcomes (`now`: for expired leases).

    In order: CHECKING while any delivery may exist unconfirmed (never FAILED: a buyer who reads
    FAILED orders again, and the provider may already have the order); then, once nothing is on
    its way, SUCCEEDED / SKIPPED / PARTIAL (some created, some failed) / FAILED (none created);
    otherwise PENDING, even if one destination already failed, because another may still get it.
    """
    now = now or datetime.now(UTC)
    if not outcomes:
        return OrderState.PENDING
    if any(_may_exist(o, now) for o in outcomes):
        return OrderState.CHECKING
    if any(not o.status.is_final for o in outcomes):
        return OrderState.PENDING
    statuses = {o.status for o in outcomes}
    if statuses == {OutcomeStatus.SKIPPED}:
        return OrderState.SKIPPED
    created = OutcomeStatus.SUCCEEDED in statuses
    if statuses & _FAILED:
        return OrderState.PARTIAL if created else OrderState.FAILED
    return OrderState.SUCCEEDED  # SUCCEEDED, with any SKIPPED destinations


class HistoryEntry(BaseModel):
    """One line of a record's history: what happened, when, and (for operators' entries) who/why."""

    # Built on first use, not at import: only status reads and the operator CLI validate outcomes,
    # so neither function's cold start pays for it.
    model_config = ConfigDict(defer_build=True)

    at: datetime
    status: OutcomeStatus
    attempt: int = 0
    http_status: int | None = None
    error_code: str | None = None
    note: str | None = None
    by: str | None = None  # the operator who recorded it (`orderbridge review resolve --by`)


class Outcome(BaseModel):
    """What the outcome table holds for one order at one destination. No secrets, little PII."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    tracking_id: str
    destination: str
    status: OutcomeStatus
    provider: str | None = None
    route: str | None = None
    source: str | None = None
    external_order_id: str | None = None
    attempts: int = 0
    provider_order_id: str | None = None
    provider_reference: str | None = None
    redirect_url: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    unknown_result: bool = False
    unknown_since: datetime | None = Field(
        default=None,
        description="When the create call whose result is unknown was sent: the provider may still "
        "create the order until this plus the destination's reconcile window.",
    )
    content_digests: dict[str, str] = Field(
        default_factory=dict,
        description="Keyed digest per top-level order field, to tell a changed resubmission from a copy.",
    )
    lease_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    history: list[HistoryEntry] = Field(default_factory=list)

    def public_view(self) -> dict[str, object]:
        """What the status endpoint may show a storefront: no error internals beyond a code."""
        return {
            "destination": self.destination,
            "status": self.status.value,
            "provider_order_id": self.provider_order_id,
            "provider_reference": self.provider_reference,
            "redirect_url": self.redirect_url,
            "error_code": self.error_code,
            "updated_at": self.updated_at.isoformat(),
        }
