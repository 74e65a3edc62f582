"""Outcome records: one per order and destination, the record of what happened to it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class OutcomeStatus(StrEnum):
    RECEIVED = "RECEIVED"
    IN_FLIGHT = "IN_FLIGHT"
    SUCCEEDED = "SUCCEEDED"
    FAILED_RETRYABLE = "FAILED_RETRYABLE"
    FAILED_PERMANENT = "FAILED_PERMANENT"
    DEAD_LETTERED = "DEAD_LETTERED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.DEAD_LETTERED}
)


class HistoryEntry(BaseModel):
    # Built on first use, not at import: only status reads and the operator CLI validate outcomes,
    # so neither function's cold start pays for it.
    model_config = ConfigDict(defer_build=True)

    at: datetime
    status: OutcomeStatus
    attempt: int = 0
    http_status: int | None = None
    error_code: str | None = None
    note: str | None = None


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
