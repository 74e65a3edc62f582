"""Komerza: `POST /stores/{store_id}/orders` with `Authorization: Bearer <api_key>`.

The body names the payment method `gateway` (1..256) and needs `emailAddress` (<=256): an order
without an email is refused (EMAIL_REQUIRED). An order is either `items[{productId, variantId,
quantity}]` (the route's catalog gives the uuids), priced by Komerza's catalog less its coupon, or a
product-less invoice for an arbitrary `cost` (0.01..1000000) with no items. Komerza takes no
address (only `countryCode`), so a buyer without a zip is never refused. Every answer is the
wrapper `{success, message, code, data}`: success is a 2xx *and* `success: true`, with the order at
`data.id`; a 200 with `success: false` is an error. Errors keep the wrapper (`ValidationError`,
`BadToken`, `RateLimited` with `Retry-After`).

Money. The create has no currency: the store's applies, named by `settings.currency` (default
USD); an order in another currency is refused (CURRENCY_NOT_SUPPORTED), never charged as a number
in the wrong currency. What the buyer pays reaches Komerza this way:

* `items` when Komerza's own pricing gives that amount: the order states no price (a storefront
  form: Komerza prices it and applies the coupon), or every line's catalog entry states Komerza's
  `price` for it (a decimal in the store currency), the buyer paid exactly that with no discount
  and no coupon, and the sum is what the buyer pays;
* otherwise `cost` = the amount the buyer pays (lines, discounts, shipping, tax), with the coupon
  not sent (it is already in the amount; Komerza would take it off again) and the lines, the
  coupon and the amount kept in `metadata["orderbridge_order"]` (at most 500 characters: a long
  list is cut with an ellipsis). `settings.on_price_difference: "refuse"` refuses such an order
  instead (PRICE_NOT_EXPRESSIBLE). `settings.mode: "cost"` always sends `cost`.

`cost` goes as a JSON number whose text is the exact decimal amount (checked: never a float that
rounds). The adapter computes what Komerza will charge and `check_total` refuses a mismatch.

Reference on the wire: `metadata["orderbridge_tracking_id"]` = tracking id (Komerza allows 20 keys,
key <= 40, value <= 500; the order's own metadata shares those limits).

Lookup after an unknown result (`supports_lookup`): Komerza has no idempotency key and no search
by metadata, but it lists a store's orders filtered by the buyer's email and a date window, and
each order read on its own carries its `metadata`. Sources: Komerza's OpenAPI document as generated
into its TypeScript SDK (github.com/zraycd/komerza-sdk, `src/generated/schema.ts`:
`GET /stores/{storeId}/orders` "Gets orders in the specified store and optionally filters by the
given criteria", query `dateFrom`, `dateTo`, `status`, `gateway`, `email`, `discord`, `Page`,
`PageSize`, answering `PageOrderPaginatedResponse {success, pages, data: PageOrder[]}`, where a
`PageOrder` has no metadata; `GET /stores/{storeId}/orders/{orderId}` answering
`OrderResponseResponse {success, message, code, data: OrderResponse {order: Order}}`, where
`Order.metadata` is "Custom key-value metadata attached to the order for merchant tracking
purposes"; `src/resources/orders.ts`: `list()` sends those query names, `Page` from 1) and its API
reference (docs.komerza.com/api-reference). So the lookup lists the orders of the buyer's email in
a window (`_window`), pages through all of them, reads each one and counts only an order whose
`metadata.orderbridge_tracking_id` is the tracking id: one is the delivery's order, several are
parked for review (DUPLICATE_REFERENCE), none is NOT_FOUND (and inside the reconcile window the
dispatcher looks again rather than re-sending). A page or an order that cannot be read makes the
whole lookup RETRYABLE (never NOT_FOUND), and more than `LOOKUP_MAX_ORDERS` candidates is REVIEW.
The window: from the order's `placed_at` less a day (Komerza cannot hold our order before the
storefront placed it), but at most `settings.lookup_days` (default 30, longer than a message can
live in SQS plus its DLQ) back, until a day after now (clock skew).

Not confirmed (stated in the report): whether Komerza's `email` filter is exact or a substring
match (every candidate is read and checked, so either is safe), the date format `dateFrom` and
`dateTo` parse (ISO 8601 UTC is sent, as .NET reads it), the largest `PageSize` (50 is sent) and
whether `dateTo` is inclusive (a day of margin is added). The Provider interface hands
`parse_lookup` only the first response, so the further pages and the order reads are fetched
here with the same credentials (`_fetch`), outside the dispatcher's rate limiter; and the tracking
id travels in the header `X-Orderbridge-Tracking-Id` (not a Komerza header; it is ignored there)
so that `parse_lookup` knows what it looks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit
from uuid import UUID

import requests
from pydantic import (
    AfterValidator,
    AliasChoices,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from orderbridge.exceptions import RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import CatalogEntry, CurrencyCode, ProviderSettings
from orderbridge.models.order import CanonicalOrder, OrderLine
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderCredentials,
    ProviderRequest,
    ProviderResult,
    ResultKind,
    catalog_price,
    safe_json,
)

REFERENCE_KEY = "orderbridge_tracking_id"
REFERENCE_HEADER = "X-Orderbridge-Tracking-Id"
LOOKUP_PAGE_SIZE = 50
LOOKUP_MAX_ORDERS = 200  # more candidates than this for one buyer in the window: a person checks
LOOKUP_DAYS_DEFAULT = 30
LOOKUP_TIMEOUT = 10.0
ORDER_KEY = "orderbridge_order"
DEFAULT_CURRENCY = "USD"
AFFILIATE_KEY = "affiliate"
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500

# Komerza `code`s that say something other than "this request is wrong", when they come with a 2xx.
_CODE_KINDS = {
    "RateLimited": ResultKind.RETRYABLE,
    "BadToken": ResultKind.AUTH,
    "Unauthorized": ResultKind.AUTH,
    "AccessDenied": ResultKind.AUTH,
    "Forbidden": ResultKind.AUTH,
}

_http_url = TypeAdapter(AnyHttpUrl)


def _valid_url(value: str) -> str:
    _http_url.validate_python(value)
    return value  # sent as configured: pydantic's normalised form may differ (trailing slash)


# --- the request, with Komerza's own limits -------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KzItem(_Wire):
    productId: UUID
    variantId: UUID
    quantity: Annotated[int, Field(ge=1)]


class KzOrderCreate(_Wire):
    emailAddress: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    gateway: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    items: list[KzItem] | None = None
    cost: Annotated[Decimal, Field(ge=Decimal("0.01"), le=Decimal(1000000))] | None = None
    sendReceipt: bool = True
    couponCode: Annotated[str, StringConstraints(max_length=32)] | None = None
    affiliateCode: Annotated[str, StringConstraints(max_length=256)] | None = None
    returnUrl: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_valid_url)] | None = None
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY)],
        Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)],
    ] = Field(max_length=MAX_METADATA_KEYS)
    ipAddress: Annotated[str, StringConstraints(max_length=45)] | None = None
    userAgent: Annotated[str, StringConstraints(max_length=512)] | None = None
    countryCode: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


# --- the answers ---------------------------------------------------------------------------------


class KzOrder(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Annotated[str, StringConstraints(min_length=1)]


class KzEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")
    success: bool
    message: str | None = None
    code: str | None = None
    data: Any = None


# --- the destination's settings and the route's catalog entries (checked at load time) ----------


class KomerzaSettings(ProviderSettings):
    """`settings` of a komerza destination."""

    store_id: Annotated[str, StringConstraints(min_length=1)]
    currency: CurrencyCode = Field(default=DEFAULT_CURRENCY, description="The store's currency.")
    mode: Literal["items", "cost"] = "items"
    gateway: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    on_price_difference: Literal["cost", "refuse"] = "cost"
    send_receipt: bool = True
    return_url: str | None = None
    lookup_days: int = Field(default=LOOKUP_DAYS_DEFAULT, ge=1, le=366)
    checkout_url_template: str | None = Field(default=None, description="May use {order_id}, {store_id}.")

    @model_validator(mode="after")
    def _template_fields(self) -> KomerzaSettings:
        try:
            (self.checkout_url_template or "").format(order_id="o", store_id="s")
        except (AttributeError, KeyError, IndexError, ValueError):
            raise ValueError("checkout_url_template may only use {order_id} and {store_id}") from None
        return self


class KomerzaCatalogEntry(CatalogEntry):
    """One SKU of a route's catalog for a komerza destination (`product_id`/`variant_id` also read)."""

    productId: UUID = Field(validation_alias=AliasChoices("productId", "product_id"))
    variantId: UUID = Field(validation_alias=AliasChoices("variantId", "variant_id"))
    price: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False, description="Komerza's price.")

    @model_validator(mode="after")
    def _price_in_store_currency(self, info: Any) -> KomerzaCatalogEntry:
        currency = getattr((info.context or {}).get("settings"), "currency", DEFAULT_CURRENCY)
        if self.price is not None and not money.fits(self.price, currency):
            raise ValueError(f"price {self.price} has more decimals than the store's {currency} allows")
        return self


class KomerzaCredentials(ProviderCredentials):
    """The destination's secret: `{"api_key": "..."}` (the store's API key, sent as a bearer token)."""

    api_key: SecretStr = Field(min_length=1)


class KomerzaProvider(Provider[KomerzaSettings, KomerzaCatalogEntry, KomerzaCredentials]):
    name: ClassVar[str] = "komerza"
    settings_model: ClassVar[type[ProviderSettings]] = KomerzaSettings
    catalog_entry_model: ClassVar[type[CatalogEntry]] = KomerzaCatalogEntry
    credentials_model: ClassVar[type[ProviderCredentials]] = KomerzaCredentials
    default_base_url: ClassVar[str] = "https://api.komerza.com"
    supports_lookup: ClassVar[bool] = True

    @classmethod
    def accepted_currencies(cls, settings: KomerzaSettings) -> frozenset[str] | None:
        """The store's one currency: the create names none, so the store's applies."""
        return frozenset({settings.currency})

    def auth_headers(self, credentials: Mapping[str, Any]) -> dict[str, str]:
        key = self.credentials(credentials).api_key.get_secret_value()
        return {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    def build_create(self, delivery: Delivery) -> ProviderRequest:
        url = f"{self.base_url}/stores/{self.settings.store_id}/orders"
        try:
            body = self._create_body(delivery)
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", _first_error(exc)) from exc
        wire = body.model_dump(mode="json", exclude_none=True)
        if body.cost is not None:
            wire["cost"] = _exact_number(body.cost)
        return ProviderRequest(
            method="POST", url=url, json=wire, headers={"Content-Type": "application/json"}
        )

    def _create_body(self, delivery: Delivery) -> KzOrderCreate:
        order = delivery.order
        settings = self.settings
        if not order.buyer.email:
            raise RequestRejectedError(
                "EMAIL_REQUIRED",
                "komerza requires the buyer's emailAddress, and this order has no email",
                field="buyer.email",
            )
        self.check_currency(order, f"the Komerza store {settings.store_id}")
        # The store's configured gateway wins: gateway ids belong to the Komerza store, while a
        # storefront's payment method ("manual", "card") is only a fallback for routes without one.
        gateway = settings.gateway or order.payment_method
        if not gateway:
            raise RequestRejectedError(
                "DESTINATION_MISCONFIGURED",
                "komerza needs a payment gateway: settings.gateway or the order's payment_method",
            )
        due = order.amount_due()
        items: list[KzItem] | None = None
        cost: Decimal | None = None
        charged: Decimal | None = None  # what Komerza will charge, when we can tell
        why_cost = "settings.mode is 'cost'"
        if settings.mode == "items":
            items, charged, why_cost = self._items(delivery, due)
        if items is None:
            if due is None:
                raise RequestRejectedError(
                    "MISSING_TOTAL",
                    "komerza cost mode charges what the buyer pays, and this order states no "
                    "total and has lines without a price",
                )
            if settings.mode == "items" and settings.on_price_difference == "refuse":
                raise RequestRejectedError(
                    "PRICE_NOT_EXPRESSIBLE",
                    f"komerza's catalog would not charge what the buyer pays ({due} {order.currency}): "
                    f"{why_cost}",
                )
            cost = charged = due
        self.check_total(charged, order)

        metadata = dict(order.metadata)
        if cost is not None:
            metadata[ORDER_KEY] = _summary(order, due)
        metadata[REFERENCE_KEY] = delivery.reference
        address = order.billing_address or order.shipping_address
        return KzOrderCreate(
            emailAddress=str(order.buyer.email),
            gateway=gateway,
            items=items,
            cost=cost,
            sendReceipt=settings.send_receipt,
            couponCode=order.coupon if cost is None else None,
            affiliateCode=order.metadata.get(AFFILIATE_KEY) or None,
            returnUrl=settings.return_url,
            metadata=metadata,
            ipAddress=order.buyer.ip_address,
            userAgent=order.buyer.user_agent,
            countryCode=address.country if address else None,
        )

    def _items(
        self, delivery: Delivery, due: Decimal | None
    ) -> tuple[list[KzItem] | None, Decimal | None, str]:
        """The items, with what Komerza's catalog will charge for them (None: Komerza prices them),
        or no items and the reason when they would not charge what the buyer pays."""
        order = delivery.order
        if due is not None and any(line.sku is None for line in order.lines):
            return None, None, "a line without a SKU is not a Komerza product"
        items: list[KzItem] = []
        catalog_total: Decimal | None = Decimal(0)
        differs = ""
        for index, line in enumerate(order.lines):
            try:
                item, price = self._item(delivery, line, index)
            except ValidationError as exc:
                raise RequestRejectedError("PROVIDER_LIMIT", f"items.{index}.{_first_error(exc)}") from exc
            items.append(item)
            if price is None or catalog_total is None:
                catalog_total = None
                continue
            catalog_total += price * line.quantity
            gross = line.gross()  # a line without a unit price (3 for 10.00) is compared as a whole
            if gross is not None and (gross != price * line.quantity or line.discount):
                differs = differs or (
                    f"lines.{index} was paid {gross} for {line.quantity} less {line.discount}, "
                    f"Komerza's price is {price} each"
                )
        if due is None:
            return items, None, ""
        if differs:
            return None, None, differs
        if catalog_total is None:
            return None, None, "the route's catalog does not state Komerza's prices"
        if order.coupon:
            return None, None, "Komerza would apply the coupon by its own rule"
        if catalog_total != due:
            return None, None, f"its catalog prices add up to {catalog_total}"
        return items, catalog_total, ""

    def _item(self, delivery: Delivery, line: OrderLine, index: int) -> tuple[KzItem, Decimal | None]:
        if line.sku is None:
            raise RequestRejectedError(
                "CUSTOM_LINE_UNSUPPORTED",
                f"komerza orders need catalog products; line {line.name!r} has no SKU and no price "
                "(use settings.mode 'cost' for product-less invoices)",
                field=f"lines.{index}.sku",
            )
        entry = self.catalog_entry(delivery, line.sku)
        price = catalog_price(entry.price, line.sku, self.settings.currency)
        return KzItem(productId=entry.productId, variantId=entry.variantId, quantity=line.quantity), price

    def parse_create(self, response: requests.Response) -> ProviderResult:
        kind = self.classify_status(response.status_code)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, kind)
        try:
            envelope = KzEnvelope.model_validate(response.json())
        except (ValueError, ValidationError):
            return self._unknown(response)
        if not envelope.success:
            # HTTP 200 with `success: false`: Komerza refused; the code says how.
            return self._error(response, _CODE_KINDS.get(envelope.code or "", ResultKind.PERMANENT))
        try:
            order = KzOrder.model_validate(envelope.data)
        except ValidationError:
            return self._unknown(response)
        return self._result(
            response,
            ResultKind.SUCCEEDED,
            provider_order_id=order.id,
            redirect_url=self._checkout_url(order.id),
        )

    # --- lookup (see the module docstring for the sources) -------------------------------------

    def build_lookup(self, delivery: Delivery) -> ProviderRequest:
        order = delivery.order
        if not order.buyer.email:
            # the create is refused without an email (EMAIL_REQUIRED): no order can exist
            raise RequestRejectedError(
                "EMAIL_REQUIRED",
                "komerza requires the buyer's emailAddress, and this order has no email",
                field="buyer.email",
            )
        date_from, date_to = self._window(order)
        return ProviderRequest(
            method="GET",
            url=f"{self.base_url}/stores/{self.settings.store_id}/orders",
            params={
                "email": str(order.buyer.email),
                "dateFrom": _iso(date_from),
                "dateTo": _iso(date_to),
                "Page": "1",
                "PageSize": str(LOOKUP_PAGE_SIZE),
            },
            headers={REFERENCE_HEADER: delivery.reference},
        )

    def _window(self, order: CanonicalOrder) -> tuple[datetime, datetime]:
        now = datetime.now(UTC)
        earliest = now - timedelta(days=self.settings.lookup_days)
        placed = order.placed_at
        if placed is not None:
            placed = placed if placed.tzinfo else placed.replace(tzinfo=UTC)
            earliest = max(earliest, placed - timedelta(days=1))
        return earliest, now + timedelta(days=1)

    def parse_lookup(self, response: requests.Response) -> ProviderResult:
        sent = getattr(response, "request", None)
        reference = (getattr(sent, "headers", None) or {}).get(REFERENCE_HEADER)
        if not reference or sent is None or not sent.url:
            return self._unknown(response)
        page = self._page(response)
        if isinstance(page, ProviderResult):
            return page
        ids, pages = page
        headers = {
            k: v for k, v in sent.headers.items() if k.lower() in ("authorization", "accept", "user-agent")
        }
        base = urlsplit(sent.url)
        list_url = urlunsplit((base.scheme, base.netloc, base.path, "", ""))
        query = parse_qs(base.query)
        with requests.Session() as session:
            for number in range(2, pages + 1):
                if len(ids) > LOOKUP_MAX_ORDERS:
                    break
                params = {k: v[0] for k, v in query.items()} | {"Page": str(number)}
                more = self._fetch(session, list_url, headers, params)
                if isinstance(more, ProviderResult):
                    return more
                next_page = self._page(more)
                if isinstance(next_page, ProviderResult):
                    return next_page
                ids += next_page[0]
            ids = list(dict.fromkeys(ids))
            if len(ids) > LOOKUP_MAX_ORDERS:
                return self._result(
                    response,
                    ResultKind.REVIEW,
                    "LOOKUP_TOO_BROAD",
                    f"more than {LOOKUP_MAX_ORDERS} Komerza orders of this buyer in the window; "
                    f"a person looks for metadata.{REFERENCE_KEY} = {reference}",
                    unknown_result=True,
                )
            matches: list[str] = []
            for order_id in ids:
                one = self._fetch(session, f"{list_url}/{quote(order_id, safe='')}", headers, None)
                if isinstance(one, ProviderResult):
                    return one
                metadata = _order_metadata(one)
                if metadata is None:
                    return self._unknown(one)
                if metadata.get(REFERENCE_KEY) == reference:
                    matches.append(order_id)
        return self.lookup_verdict(
            response,
            matches,
            f"Komerza orders carry metadata.{REFERENCE_KEY} = {reference}",
            redirect_url=self._checkout_url(matches[0]) if len(matches) == 1 else None,
        )

    def _page(self, response: requests.Response) -> tuple[list[str], int] | ProviderResult:
        """(order ids, page count) of one `PageOrderPaginatedResponse`, or the error it is."""
        kind = self.classify_status(response.status_code)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, kind)
        body = safe_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return self._unknown(response)
        if body.get("success") is False:
            return self._error(response, _CODE_KINDS.get(str(body.get("code") or ""), ResultKind.PERMANENT))
        ids = [str(o["id"]) for o in body["data"] if isinstance(o, dict) and o.get("id")]
        if len(ids) != len(body["data"]):
            return self._unknown(response)
        pages = body.get("pages")
        return ids, pages if isinstance(pages, int) and pages >= 1 else 1

    def _fetch(
        self, session: requests.Session, url: str, headers: dict[str, str], params: dict[str, str] | None
    ) -> requests.Response | ProviderResult:
        """A further read of the lookup; any failure is RETRYABLE (the order may exist)."""
        try:
            response = session.get(url, headers=headers, params=params, timeout=LOOKUP_TIMEOUT)
        except requests.RequestException as exc:
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="LOOKUP_INCOMPLETE",
                error_message=f"a Komerza lookup read failed: {type(exc).__name__}",
                unknown_result=True,
            )
        kind = self.classify_status(response.status_code)
        if kind is not ResultKind.SUCCEEDED:
            error = self._error(response, kind)
            if error.kind is ResultKind.PERMANENT:  # e.g. 404 for an order listed a moment ago
                return self._result(
                    response,
                    ResultKind.RETRYABLE,
                    error.error_code,
                    error.error_message,
                    unknown_result=True,
                )
            return error
        return response

    # --- helpers -------------------------------------------------------------------------------

    def _checkout_url(self, order_id: str) -> str | None:
        """The hosted checkout page for the order, if `settings.checkout_url_template` is set (the
        settings model has checked it uses only {order_id} and {store_id})."""
        settings = self.settings
        if not settings.checkout_url_template:
            return None
        # the provider's answer: a uuid, percent-encoded, or no checkout link at all
        safe_id = checkout_order_id(order_id)
        if safe_id is None:
            return None
        return settings.checkout_url_template.format(order_id=safe_id, store_id=settings.store_id)

    def _unknown(self, response: requests.Response) -> ProviderResult:
        return self._result(
            response,
            ResultKind.RETRYABLE,
            "BAD_RESPONSE",
            "2xx without success and an order id",
            unknown_result=True,
        )

    def _error(self, response: requests.Response, kind: ResultKind) -> ProviderResult:
        body = safe_json(response)
        code = message = None
        if isinstance(body, dict):
            code = body.get("code") or None
            message = body.get("message") or None
            fields = _field_errors(body.get("errors") or body.get("data"))
            if fields:
                message = f"{message or 'invalid request'} ({fields})"
        error_code = f"KOMERZA_{code}" if code else f"KOMERZA_{response.status_code}"
        return self._result(response, kind, error_code, str(message or response.reason or "no message"))


def _exact_number(amount: Decimal) -> float:
    """`amount` as a JSON number whose text is exactly the amount (json writes a float's shortest
    round-trip form, so 409.94 goes as 409.94). Refused if a float cannot say it exactly."""
    number = float(amount)
    if Decimal(repr(number)) != amount:
        raise RequestRejectedError("PROVIDER_LIMIT", f"cost: {amount} cannot be sent exactly as a number")
    return number


def _summary(order: CanonicalOrder, due: Decimal | None) -> str:
    """The order behind a product-less `cost`, for people reading it in Komerza (<= 500 chars)."""
    parts = [f"{due} {order.currency}"] + (["test order"] if order.test else [])
    if order.coupon:
        parts.append(f"coupon {order.coupon}")
    for line in order.lines:
        text = f"{line.quantity} x {line.name or line.sku}"
        if line.sku and line.name:
            text += f" [{line.sku}]"
        if line.unit_price is not None:
            text += f" @ {line.unit_price}"
        elif line.line_price is not None:
            text += f" for {line.line_price}"
        if line.discount:
            text += f" less {line.discount}"
        options = ", ".join(f"{k}: {v}" for k, v in line.options.items() if v)
        parts.append(f"{text} ({options})" if options else text)
    if order.order_discount:
        parts.append(f"order discount {order.order_discount}")
    if order.shipping_total:
        parts.append(f"shipping {order.shipping_total}")
    if order.tax():
        parts.append(f"tax {order.tax()}{' included' if order.taxes_included else ''}")
    text = "; ".join(parts)
    return text if len(text) <= MAX_METADATA_VALUE else text[: MAX_METADATA_VALUE - 1] + "\u2026"


def _field_errors(errors: Any) -> str:
    """Field errors as `{field: [messages]}`, `[{field, message}]` or `[str]`, flattened."""
    parts: list[str] = []
    if isinstance(errors, dict):
        for name, value in errors.items():
            text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{name}: {text}")
    elif isinstance(errors, list):
        for entry in errors:
            if isinstance(entry, dict):
                name = entry.get("field") or entry.get("property") or entry.get("name")
                text = entry.get("message") or entry.get("error") or ""
                parts.append(f"{name}: {text}" if name else str(text))
            else:
                parts.append(str(entry))
    return "; ".join(p for p in parts if p)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _order_metadata(response: requests.Response) -> dict[str, Any] | None:
    """`data.order.metadata` of an `OrderResponseResponse` ({} when the order has none)."""
    body = safe_json(response)
    if not isinstance(body, dict) or body.get("success") is not True:
        return None
    order = (body.get("data") or {}).get("order") if isinstance(body.get("data"), dict) else None
    if not isinstance(order, dict):
        return None
    metadata = order.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def checkout_order_id(value: Any) -> str | None:
    """A Komerza order id (a uuid) made safe for a URL path (percent-encoded), or None if it is not one.

    It comes from the provider's answer and goes into the buyer's redirect: CR/LF, `?query`,
    `../` or anything else that is not a uuid never reaches the checkout URL.
    """
    import re
    from urllib.parse import quote

    pattern = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        return None
    return quote(value, safe="")
