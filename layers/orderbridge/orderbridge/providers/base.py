"""The provider interface.

An adapter only translates: canonical order -> HTTP request, HTTP response -> `ProviderResult`.
Sending, timeouts, credential refresh and retries belong to the dispatcher, so every provider
gets them the same way.
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar

import requests
from pydantic import BaseModel

from orderbridge.exceptions import RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import Destination
from orderbridge.models.order import CanonicalOrder


class ResultKind(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    RETRYABLE = "RETRYABLE"
    PERMANENT = "PERMANENT"
    AUTH = "AUTH"  # credentials refused: refresh once, then permanent
    NOT_FOUND = "NOT_FOUND"  # a lookup found no order
    REVIEW = "REVIEW"  # it may exist and nothing can tell: a person checks (NEEDS_REVIEW)


@dataclass(frozen=True)
class RateLimitInfo:
    remaining: int | None = None
    quota: int | None = None
    reset_seconds: float | None = None
    window_seconds: float | None = None


@dataclass(frozen=True)
class ProviderResult:
    kind: ResultKind
    http_status: int | None = None
    provider_order_id: str | None = None
    provider_reference: str | None = None
    redirect_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    rate_limit: RateLimitInfo | None = None
    unknown_result: bool = False


@dataclass(frozen=True)
class Delivery:
    """One order going to one destination."""

    tracking_id: str
    destination_id: str
    destination: Destination
    order: CanonicalOrder
    source: str
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """The external reference the provider stores: stable for the life of the delivery."""
        return self.tracking_id


@dataclass(frozen=True)
class ProviderRequest:
    method: str
    url: str
    json: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Provider(ABC):
    """Base class for provider adapters. Subclasses are registered in `registry.py`."""

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    supports_lookup: ClassVar[bool] = False
    retry_after_header: ClassVar[str] = "Retry-After"
    #: After a create whose answer never came, how long the provider may still be creating the
    #: order. Until it has passed a missing order is only looked for again, never re-sent.
    #: A destination's `reconcile_window_seconds` overrides it.
    reconcile_window_seconds: ClassVar[float] = 300.0
    #: The pydantic models of this provider's destination `settings` and route catalog entries:
    #: the configuration is checked against them when it is loaded (None: not checked).
    settings_model: ClassVar[type[BaseModel] | None] = None
    catalog_entry_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, *, destination: Destination) -> None:
        self.destination = destination
        self.base_url = str(destination.base_url or self.default_base_url).rstrip("/")

    @property
    def reconcile_window(self) -> float:
        """Seconds: the destination's setting, else the provider's default."""
        return self.destination.reconcile_window_seconds or self.reconcile_window_seconds

    @abstractmethod
    def auth_headers(self, credentials: dict[str, Any]) -> dict[str, str]:
        """Headers that authenticate a call. Raise CredentialsError if a field is missing."""

    @abstractmethod
    def build_create(self, delivery: Delivery) -> ProviderRequest:
        """The create-order request. Raise RequestRejectedError for what the provider would refuse."""

    @abstractmethod
    def parse_create(self, response: requests.Response) -> ProviderResult:
        """Classify the provider's answer to a create-order call."""

    def build_lookup(self, delivery: Delivery) -> ProviderRequest | None:
        """A request that finds an order previously created for this delivery, if possible."""
        return None

    def parse_lookup(self, response: requests.Response) -> ProviderResult:
        """SUCCEEDED with the order id if the lookup found it, NOT_FOUND if it did not."""
        raise NotImplementedError

    # --- helpers for subclasses -----------------------------------------------------------------

    @staticmethod
    def check_total(provider_total: Decimal | None, order: CanonicalOrder) -> None:
        """The invariant every adapter keeps: the total the provider will compute from the request
        equals what the buyer pays, to the currency's minor unit. `provider_total` is the adapter's
        own computation of the provider's rule over the request it built (None: the provider
        computes no total). Raises RequestRejectedError("TOTAL_MISMATCH") rather than send a
        different order."""
        due = order.amount_due()
        if provider_total is None or due is None:
            return
        unit = money.quantum(order.currency)
        if provider_total.quantize(unit) != due.quantize(unit):
            raise RequestRejectedError(
                "TOTAL_MISMATCH",
                f"the provider would charge {provider_total} {order.currency}, the buyer paid {due}",
            )

    @staticmethod
    def check_currency(order: CanonicalOrder, accepted: Collection[str], where: str) -> None:
        """Refuse an order in a currency the destination does not take (CURRENCY_NOT_SUPPORTED)."""
        if order.currency not in accepted:
            raise RequestRejectedError(
                "CURRENCY_NOT_SUPPORTED",
                f"the order is in {order.currency}; {where} takes {', '.join(sorted(accepted)) or 'none'}",
            )

    def rate_limit(self, headers: Any) -> RateLimitInfo | None:
        """The provider's quota headers, for providers that send them."""
        return None

    def _result(
        self,
        response: requests.Response,
        kind: ResultKind,
        error_code: str | None = None,
        error_message: str | None = None,
        **found: Any,
    ) -> ProviderResult:
        """A result carrying what every answer has: status, retry header, quota headers.

        `found` takes the success fields (provider_order_id, provider_reference, redirect_url)
        and `unknown_result`.
        """
        return ProviderResult(
            kind=kind,
            http_status=response.status_code,
            error_code=error_code,
            error_message=error_message,
            retry_after=parse_retry_after(response.headers.get(self.retry_after_header)),
            rate_limit=self.rate_limit(response.headers),
            **found,
        )

    @staticmethod
    def classify_status(status: int) -> ResultKind:
        if 200 <= status < 300:
            return ResultKind.SUCCEEDED
        if status in (401, 403):
            return ResultKind.AUTH
        if status in (408, 409, 425, 429) or status >= 500:
            return ResultKind.RETRYABLE
        return ResultKind.PERMANENT


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After style header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def catalog_price(ref: dict[str, Any], sku: str, currency: str) -> Decimal | None:
    """The provider's own price for a SKU as the route's catalog entry states it (`price`, an amount
    in `currency`), None when it states none. Raises RequestRejectedError(DESTINATION_MISCONFIGURED)
    for a price that is not an amount in that currency."""
    raw = ref.get("price")
    if raw is None:
        return None
    try:
        price = Decimal(str(raw))
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0 or not money.fits(price, currency):
        raise RequestRejectedError(
            "DESTINATION_MISCONFIGURED",
            f"catalog entry for SKU {sku!r}: price {raw!r} is not an amount in {currency}",
        )
    return price


def safe_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
