"""In-memory, thread-safe state of one provider sandbox: orders created, counters, a request log."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

REQUEST_LOG_SIZE = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OrderRecord:
    """One order the sandbox created, with exactly what was received."""

    id: int
    account: str
    order: dict[str, Any]  # the provider's order object, as its GET answers it
    request: Any  # the request JSON exactly as received (parsed)
    raw_body: str  # the request body as received
    headers: dict[str, str]  # headers of interest; credentials redacted
    received_at: str
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific (e.g. order products)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "order": self.order,
            "request": self.request,
            "raw_body": self.raw_body,
            "headers": self.headers,
            "received_at": self.received_at,
        }


class SandboxState:
    """Orders, counters and a bounded request log of one provider. Every method is thread-safe."""

    def __init__(self, provider: str, *, first_id: int = 100) -> None:
        self.provider = provider
        self.first_id = first_id
        self._lock = threading.RLock()
        self._orders: list[OrderRecord] = []
        self._next_ids: dict[str, int] = {}
        self._counters: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    # --- orders -----------------------------------------------------------------------------------

    def add_order(
        self,
        account: str,
        build: Callable[[int], dict[str, Any]],
        *,
        request: Any,
        raw_body: str,
        headers: dict[str, str],
        extra: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> OrderRecord:
        """Allocate the account's next order id, build the order with it and keep it (atomically)."""
        with self._lock:
            order_id = self._next_ids.get(account, self.first_id)
            self._next_ids[account] = order_id + 1
            order = build(order_id)
            record = OrderRecord(
                id=order_id,
                account=account,
                order=order,
                request=request,
                raw_body=raw_body,
                headers=headers,
                received_at=utc_now().isoformat(),
                extra=extra(order_id, order) if extra is not None else {},
            )
            self._orders.append(record)
            self._counters["creates"] += 1
            return record

    def orders(self, account: str | None = None) -> list[OrderRecord]:
        with self._lock:
            return [o for o in self._orders if account is None or o.account == account]

    def get_order(self, account: str, order_id: int) -> OrderRecord | None:
        with self._lock:
            for record in self._orders:
                if record.account == account and record.id == order_id:
                    return record
            return None

    # --- counters and log -------------------------------------------------------------------------

    def incr(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counters[name] += by

    def log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = dict(self._counters)
            return {
                "provider": self.provider,
                "requests": counters.pop("requests", 0),
                "creates": counters.pop("creates", 0),
                "rate_limited": counters.pop("rate_limited", 0),
                "orders": len(self._orders),
                "counters": dict(sorted(counters.items())),
            }

    def reset(self) -> None:
        with self._lock:
            self._orders.clear()
            self._next_ids.clear()
            self._counters.clear()
            self._log.clear()
