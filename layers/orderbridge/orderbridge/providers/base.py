"""The provider interface.

An adapter only translates: canonical order -> HTTP request, HTTP response -> `ProviderResult`.
Sending, timeouts, credential refresh and retries belong to the dispatcher, so every provider
gets them the same way.
"""

from __future__ import annotations

import email.utils
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar, cast

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from orderbridge.exceptions import CredentialsMalformedError, RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import CatalogEntry, Destination, ProviderSettings, describe_errors
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


class ProviderCredentials(BaseModel):
    """Base of a provider's `credentials_model`: the keys of the destination's secret (a JSON
    object) that the adapter authenticates with. Values are `SecretStr`, so they never show in a
    repr, a log line or an error; keys the adapter does not read are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


SettingsT = TypeVar("SettingsT", bound=ProviderSettings)
EntryT = TypeVar("EntryT", bound=CatalogEntry)
CredentialsT = TypeVar("CredentialsT", bound=ProviderCredentials)


class Provider(ABC, Generic[SettingsT, EntryT, CredentialsT]):
    """Base class for provider adapters. Subclasses are registered in `registry.py`.

    A subclass names its three models as type arguments and as class attributes (the registry and
    the configuration check read the class attributes; `settings`, `catalog_entry()` and
    `credentials()` are typed by the arguments)."""

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    supports_lookup: ClassVar[bool] = False
    retry_after_header: ClassVar[str] = "Retry-After"
    #: After a create whose answer never came, how long the provider may still be creating the
    #: order. Until it has passed a missing order is only looked for again, never re-sent.
    #: A destination's `reconcile_window_seconds` overrides it.
    reconcile_window_seconds: ClassVar[float] = 300.0
    #: The pydantic models of this provider's destination `settings` and route catalog entries:
    #: the configuration is checked against them when it is loaded, and the adapter reads both
    #: only through them (`settings`, `catalog_entry()`), so their defaults are the only ones.
    settings_model: ClassVar[type[ProviderSettings]]
    catalog_entry_model: ClassVar[type[CatalogEntry]]
    #: The JSON shape of the destination's secret (`credentials()`, `credentials_shape()`).
    credentials_model: ClassVar[type[ProviderCredentials]]

    def __init__(self, *, destination: Destination) -> None:
        self.destination = destination
        self.base_url = str(destination.base_url or self.default_base_url).rstrip("/")
        # Validated once. A loaded configuration has valid settings already (its check uses the
        # same model); a destination built otherwise is refused when a request is built, as
        # DESTINATION_MISCONFIGURED naming the key, rather than when the adapter is created.
        self._settings: SettingsT | None = None
        self._settings_problem = ""
        try:
            self._settings = cast(SettingsT, self.settings_model.model_validate(destination.settings))
        except ValidationError as exc:
            where = f"{self.name} destination settings"
            self._settings_problem = "; ".join(describe_errors(exc, where, self.settings_model))

    @property
    def settings(self) -> SettingsT:
        """The destination's settings as `settings_model` reads them (its defaults filled in).
        Raises RequestRejectedError(DESTINATION_MISCONFIGURED) naming the key if they are invalid."""
        if self._settings is None:
            raise RequestRejectedError("DESTINATION_MISCONFIGURED", self._settings_problem)
        return self._settings

    def catalog_entry(self, delivery: Delivery, sku: str) -> EntryT:
        """The route's catalog entry for `sku` as `catalog_entry_model` reads it. Raises
        RequestRejectedError: UNKNOWN_SKU when the catalog has none, DESTINATION_MISCONFIGURED
        naming the key when it is not what the adapter needs."""
        raw = delivery.catalog.get(sku)
        if raw is None:
            index = next((i for i, line in enumerate(delivery.order.lines) if line.sku == sku), None)
            raise RequestRejectedError(
                "UNKNOWN_SKU",
                f"SKU {sku!r} is not in the route's catalog for {delivery.destination_id}",
                field=None if index is None else f"lines.{index}.sku",
            )
        model = self.catalog_entry_model
        try:
            return cast(EntryT, model.model_validate(raw, context={"settings": self.settings}))
        except ValidationError as exc:
            where = f"catalog entry for SKU {sku!r} ({self.name})"
            raise RequestRejectedError(
                "DESTINATION_MISCONFIGURED", "; ".join(describe_errors(exc, where, model))
            ) from None

    def credentials(self, secret: Mapping[str, Any]) -> CredentialsT:
        """The destination's secret as `credentials_model` reads it. Raises CredentialsMalformedError
        naming each missing or unusable key and the shape expected, never a value."""
        model = self.credentials_model
        try:
            return cast(CredentialsT, model.model_validate(secret))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False, include_input=False, include_context=False):
                key = ".".join(str(part) for part in error["loc"])
                why = "missing" if error["type"] == "missing" else "not a non-empty string"
                problems.append(f"{key!r} is {why}")
            raise CredentialsMalformedError(
                f"{self.name} secret needs {self.credentials_shape()}: {', '.join(problems)}"
            ) from None

    @classmethod
    def credentials_shape(cls) -> str:
        """The secret's JSON shape with dummy values, e.g. `{"access_token": "..."}`: for messages."""
        return json.dumps({name: "..." for name in cls.credentials_model.model_fields})

    @property
    def reconcile_window(self) -> float:
        """Seconds: the destination's setting, else the provider's default."""
        return self.destination.reconcile_window_seconds or self.reconcile_window_seconds

    @abstractmethod
    def auth_headers(self, credentials: Mapping[str, Any]) -> dict[str, str]:
        """Headers that authenticate a call, from the secret's JSON object (read through
        `credentials()`, which raises CredentialsMalformedError naming a missing key)."""

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

    @classmethod
    def accepted_currencies(cls, settings: SettingsT) -> frozenset[str] | None:
        """The ISO 4217 codes a destination with these settings (validated by `settings_model`)
        takes orders in; None: any. The one statement of the provider's rule: the adapter refuses
        an order in another currency with it (`check_currency`), and the configuration check a
        route whose priced items are in another (`orderbridge.config.check`)."""
        return None

    def check_currency(self, order: CanonicalOrder, where: str) -> None:
        """Refuse an order in a currency the destination does not take (CURRENCY_NOT_SUPPORTED),
        by `accepted_currencies` of this destination's settings."""
        accepted = self.accepted_currencies(self.settings)
        if accepted is not None and order.currency not in accepted:
            raise RequestRejectedError(
                "CURRENCY_NOT_SUPPORTED",
                f"the order is in {order.currency}; {where} takes {', '.join(sorted(accepted)) or 'none'}",
                field="currency",
            )

    def lookup_verdict(
        self, response: requests.Response, order_ids: list[str], carrying: str, **found: Any
    ) -> ProviderResult:
        """A lookup's answer from the ids of the provider's orders that carry this delivery's
        reference (`carrying` says which, for the message: "BigCommerce orders carry
        external_order_id ob_..."): none is NOT_FOUND, one is
        SUCCEEDED with its id (and `found`: provider_reference, redirect_url), several are parked
        for a person (REVIEW, DUPLICATE_REFERENCE): never a guess, never a second create."""
        if not order_ids:
            return self._result(response, ResultKind.NOT_FOUND)
        if len(order_ids) > 1:
            return self._result(
                response,
                ResultKind.REVIEW,
                "DUPLICATE_REFERENCE",
                f"{len(order_ids)} {carrying} "
                f"(ids {', '.join(order_ids)}); a person decides which one is this delivery's",
                unknown_result=True,
            )
        return self._result(response, ResultKind.SUCCEEDED, provider_order_id=order_ids[0], **found)

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


def catalog_price(price: Decimal | None, sku: str, currency: str) -> Decimal | None:
    """The provider's own price for a SKU as the route's catalog entry states it (its validated
    `price`, an amount in `currency`), None when it states none. Raises
    RequestRejectedError(DESTINATION_MISCONFIGURED) for a price finer than `currency` allows (the
    entry model checks it is a finite amount >= 0; the currency may be known only per order)."""
    if price is None:
        return None
    if not price.is_finite() or price < 0 or not money.fits(price, currency):
        raise RequestRejectedError(
            "DESTINATION_MISCONFIGURED",
            f"catalog entry for SKU {sku!r}: price {price} is not an amount in {currency}",
        )
    return price


def safe_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
