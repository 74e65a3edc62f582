"""The fault switch: make a provider misbehave for the next N requests.

Modes:

* `error_500` - answer 500 with the provider's error body; nothing is created.
* `rate_limit` - answer 429 the way the provider does, with its retry header (`seconds`, default 1).
* `rate_limit_no_header` - answer 429 with no retry or quota headers at all.
* `timeout` - wait `seconds` (default 15) before handling the request normally: a client with a
  shorter timeout gives up, yet a valid order is still created (the ambiguous case).
* `drop_after_create` - handle the request (a valid order is created), then close the connection
  without sending any response. It only counts when an order was actually created (or, with
  scope `all`, for any request that was answered).

A fault affects the next `count` requests (default 1) that reach the provider's create-order
endpoint with a known account and an accepted credential; with `scope: "all"` it affects every
provider API request (never the `/_sandbox` control endpoints). One fault is active per provider;
setting another replaces it.
"""

from __future__ import annotations

import threading
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FaultMode(StrEnum):
    ERROR_500 = "error_500"
    RATE_LIMIT = "rate_limit"
    RATE_LIMIT_NO_HEADER = "rate_limit_no_header"
    TIMEOUT = "timeout"
    DROP_AFTER_CREATE = "drop_after_create"


class FaultScope(StrEnum):
    CREATE = "create"
    ALL = "all"


DEFAULT_TIMEOUT_SECONDS = 15.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0

#: Faults decided before the request is handled; `drop_after_create` is decided after.
BEFORE_MODES = frozenset(
    {FaultMode.ERROR_500, FaultMode.RATE_LIMIT, FaultMode.RATE_LIMIT_NO_HEADER, FaultMode.TIMEOUT}
)
AFTER_MODES = frozenset({FaultMode.DROP_AFTER_CREATE})


class Fault(BaseModel):
    """One fault setting, as posted to `/_sandbox/<provider>/faults`."""

    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    count: int = Field(default=1, ge=1, le=1_000_000)
    seconds: float | None = Field(default=None, ge=0, le=600)
    scope: FaultScope = FaultScope.CREATE

    @property
    def delay(self) -> float:
        """`seconds`, or the mode's default (15 s for a timeout, 1 s of retry-after for a 429)."""
        if self.seconds is not None:
            return self.seconds
        return DEFAULT_TIMEOUT_SECONDS if self.mode is FaultMode.TIMEOUT else DEFAULT_RETRY_AFTER_SECONDS

    def applies_to(self, *, create: bool) -> bool:
        return create or self.scope is FaultScope.ALL


class FaultSwitch:
    """Thread-safe holder of one provider's active fault and its remaining count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault: Fault | None = None

    def set(self, fault: Fault) -> Fault:
        with self._lock:
            self._fault = fault
            return fault

    def clear(self) -> None:
        with self._lock:
            self._fault = None

    @property
    def current(self) -> Fault | None:
        with self._lock:
            return self._fault

    def peek(self, *, create: bool, modes: frozenset[FaultMode]) -> Fault | None:
        """The active fault if it would apply to this request, without using it up."""
        with self._lock:
            fault = self._fault
            if fault is not None and fault.mode in modes and fault.applies_to(create=create):
                return fault
            return None

    def take(self, *, create: bool, modes: frozenset[FaultMode]) -> Fault | None:
        """Use up one count of the active fault if it applies to this request; return it."""
        with self._lock:
            fault = self._fault
            if fault is None or fault.mode not in modes or not fault.applies_to(create=create):
                return None
            left = fault.count - 1
            self._fault = fault.model_copy(update={"count": left}) if left > 0 else None
            return fault
