"""Lana Commerce API: `POST /orders.json?shop_id=sh_...` with `Authorization: Bearer <jwt>`.

The body is an ARRAY of exactly one OrderCreate (the API follows the "multiple objects" convention
but creates one order per call). Addresses need `address1, city, country (2), name, province, zip`
when sent; catalog lines are `line_items[{variant_id, quantity}]`; a custom line is a
`custom_items` entry (`title`, `price` in minor units, `physical`, `taxable`) that its line item
points at with `custom_item_index`.
The answer is an array of Order (`id`, and `number` for people). Errors carry numeric codes: 1000
invalid input (with `meta.fields`), 1001 order error, 429 rate limit; the envelope is read both as
`{"error": {code, message, meta}}` and as a bare `{code, message, meta}`.

Money (seed 003: an OrderCreate has no price, discount, shipping or tax amount; only a custom
item's `price`). Lana's order total is the sum of its lines: a variant at Lana's own catalog price,
a custom item at its `price`; a `discount_code` is evaluated by Lana's own rules, a
`shipping_rate_ids` entry is priced by Lana, tax by the shop's tax classes, none of which we know.
So an order whose every line is priced (what the buyer paid) is sent so that Lana's sum is that:

* a line goes as its catalog variant only when the route's catalog entry states the variant's Lana
  `price` (a decimal in the order's currency) and the buyer paid exactly that per unit, with no
  discount; otherwise as a custom item titled with the line's name (and SKU) at the price the buyer
  paid per unit after the line's discount and its share of the order discount (a line whose net
  does not divide by its quantity becomes two custom items, e.g. 3 for 10.00 is 2 x 3.33 + 1 x 3.34);
* shipping (after its discounts) and, when prices exclude it, the order's tax are custom items
  `Shipping` and `Tax` (`physical: false`); every custom item is `taxable: false`, so Lana adds no
  tax of its own on top of what the buyer paid (`settings.custom_items_taxable` applies only to
  custom lines of an order Lana prices itself);
* the coupon is not sent as `discount_code` (Lana would take it off a second time): the tag
  `discount_code:<code>` keeps it, and `tax_included:<amount>` the tax inside tax-inclusive prices.

An order with an unpriced line is priced by Lana (variants at its catalog price, `discount_code`
sent); if it also states a total we cannot verify, it is refused (PRICE_UNKNOWN). Either way the
adapter computes the total Lana will compute and `check_total` refuses a mismatch (TOTAL_MISMATCH).
Amounts are integers in the currency's ISO 4217 minor units (`orderbridge.models.money`: JPY and
XOF 0 decimals, KWD and IQD 3). `settings.currencies` (a list) restricts the currencies the shop
takes (CURRENCY_NOT_SUPPORTED).

Line properties: Lana's line item `fields` belong to a product's field set (`field_set_id`,
`field_index`, `choice_index`), which a storefront's free-text properties do not map to; they are
carried where Lana keeps free text, as order tags `line <n> <name>: <value>` (empty values left out).

Addresses: a billing address Lana cannot take (no zip, e.g. Hong Kong; no province; no name) is
left out (Lana does not need one: the buyer has paid at the source); a shipping address it cannot
take refuses the delivery (ADDRESS_ZIP_REQUIRED, ADDRESS_PROVINCE_REQUIRED, ADDRESS_NAME_REQUIRED),
as an order without where it goes is not the buyer's order. No email: `customer_email` is left out
and the buyer's phone goes as `mobile` (Lana requires neither).

Reference on the wire: the tag `orderbridge:<tracking id>`, and the `Idempotency-Key` header
(tracking id + a digest of the destination id), stable across retries.

Lookup after an unknown result: the order search, never a replay of the create. Lana's
"Idempotency" section (https://docs.lana.dev/overview/concepts, "Idempotency") promises the first
result again only for a retry with the same key and a byte-identical body, and keeps it for an
interval it does not state. A retry after backoff, a DLQ redrive hours later, or a catalog or
settings change between attempts (a new price, a renamed custom item: another body) is outside
that promise, and a replayed create would make a second order. So the key stays on the create as
a second guard, and the lookup is `POST /search/orders.json?shop_id=...` ("Search Orders",
https://docs.lana.dev/commerce/query/searchOrders; Lana's own CLI, github.com/lana-commerce/lana-cli
`generated/orders.ts`, command `orders search`: `request(ctx, "POST:search/orders.json")` with
`limit`, `offset`, `sort_by`, `sort_desc` and a body that is an array of search options
`{op, name, text, number, boolean, nil, now, zero, context, parent_index}`; the answer's orders are
its `items`). The search asks for orders whose `tags` equal our reference tag; the answer is then
checked here: only an order whose `tags` hold exactly that tag counts, one such order is the
delivery's, several are parked for review (DUPLICATE_REFERENCE), none is NOT_FOUND.
Not confirmed from public material (stated in the report): the operator spelling (`eq`) and the
option name (`tags`) Lana's order search uses for a tag filter; the CLI shows the option's fields,
not the vocabulary. If Lana refused them, the lookup fails with Lana's 1000 error and the delivery
is retried and finally parked NEEDS_REVIEW: never re-sent, never a second order.
A create refused because the key was already used with another body (1000 on `Idempotency-Key`)
means an earlier attempt was accepted: it is parked for review (KEY_REUSED), not failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import requests
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from orderbridge.exceptions import RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import CatalogEntry, CurrencyCode, ProviderSettings
from orderbridge.models.order import Address, CanonicalOrder, OrderLine
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

SHOP_ID_PATTERN = r"^sh_[A-Za-z0-9_-]+$"
REFERENCE_TAG = "orderbridge:{tracking_id}"
SEARCH_PATH = "/search/orders.json"
SEARCH_LIMIT = 50  # one order is expected; more than one is already a duplicate to review
IDEMPOTENCY_HEADER = "Idempotency-Key"
RATE_LIMITED = 429
MAX_PRICE = 2**63 - 1  # Lana's money is int64 minor units
SHIPPING_TITLE = "Shipping"
TAX_TITLE = "Tax"

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


# --- the request, with Lana's own limits -----------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LnAddress(_Wire):
    address1: NonEmpty
    address2: str | None = None
    city: NonEmpty
    company: str | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    name: NonEmpty
    phone: str | None = None
    province: NonEmpty
    zip: NonEmpty


class LnIndex(_Wire):
    value: Annotated[int, Field(ge=0)]


class LnLineItem(_Wire):
    variant_id: NonEmpty | None = None
    custom_item_index: LnIndex | None = None
    quantity: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _variant_or_custom(self) -> LnLineItem:
        if (self.variant_id is None) == (self.custom_item_index is None):
            raise ValueError("a line item needs a variant_id or a custom_item_index")
        return self


class LnCustomItem(_Wire):
    title: NonEmpty
    price: Annotated[int, Field(ge=0, le=MAX_PRICE)]  # the currency's minor units, as Lana stores money
    physical: bool
    taxable: bool


class LnOrderCreate(_Wire):
    billing_address: LnAddress | None = None
    shipping_address: LnAddress | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    custom_items: list[LnCustomItem] | None = None
    customer_email: NonEmpty | None = None
    mobile: NonEmpty | None = None
    discount_code: str | None = None
    gateway_id: str | None = None
    line_items: list[LnLineItem] = Field(min_length=1)
    tags: list[NonEmpty]


# --- the answers ---------------------------------------------------------------------------------


class LnOrder(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: NonEmpty
    number: str | int | None = None


class LnError(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: int | str | None = None
    message: str | None = None
    meta: dict[str, Any] | None = None


# --- the destination's settings and the route's catalog entries (checked at load time) ----------


class LanaSettings(ProviderSettings):
    """`settings` of a lana destination."""

    shop_id: Annotated[str, StringConstraints(pattern=SHOP_ID_PATTERN)]
    gateway_id: str | None = None
    currencies: list[CurrencyCode] | None = Field(default=None, description="None: any currency.")
    custom_items_physical: bool = True
    custom_items_taxable: bool = True


class LanaCatalogEntry(CatalogEntry):
    """One SKU of a route's catalog for a lana destination (`variantId` also read)."""

    variant_id: Annotated[str, StringConstraints(min_length=1)] = Field(
        validation_alias=AliasChoices("variant_id", "variantId")
    )
    price: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False, description="Lana's price.")


class LanaCredentials(ProviderCredentials):
    """The destination's secret: `{"token": "..."}` (the JWT; `jwt` is read too)."""

    token: SecretStr = Field(min_length=1, validation_alias=AliasChoices("token", "jwt"))


class LanaProvider(Provider[LanaSettings, LanaCatalogEntry, LanaCredentials]):
    name: ClassVar[str] = "lana"
    settings_model: ClassVar[type[ProviderSettings]] = LanaSettings
    catalog_entry_model: ClassVar[type[CatalogEntry]] = LanaCatalogEntry
    credentials_model: ClassVar[type[ProviderCredentials]] = LanaCredentials
    default_base_url: ClassVar[str] = "https://api.lana.dev"
    supports_lookup: ClassVar[bool] = True

    @classmethod
    def accepted_currencies(cls, settings: LanaSettings) -> frozenset[str] | None:
        """`settings.currencies`, else any currency (Lana prices in the order's own)."""
        return None if settings.currencies is None else frozenset(settings.currencies)

    def auth_headers(self, credentials: Mapping[str, Any]) -> dict[str, str]:
        token = self.credentials(credentials).token.get_secret_value()
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @staticmethod
    def idempotency_key(delivery: Delivery) -> str:
        """Stable for one delivery across retries; different for any other delivery."""
        digest = hashlib.sha256(delivery.destination_id.encode()).hexdigest()[:16]
        return f"{delivery.tracking_id}-{digest}"

    def build_create(self, delivery: Delivery) -> ProviderRequest:
        shop_id = self.settings.shop_id
        try:
            body = self._create_body(delivery)
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", _first_error(exc)) from exc
        return ProviderRequest(
            method="POST",
            url=f"{self.base_url}/orders.json",
            params={"shop_id": shop_id},
            json=[body.model_dump(mode="json", exclude_none=True)],
            headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: self.idempotency_key(delivery)},
        )

    def _create_body(self, delivery: Delivery) -> LnOrderCreate:
        order = delivery.order
        settings = self.settings
        self.check_currency(order, f"Lana shop {settings.shop_id}")
        priced = order.priced
        if not priced and order.total is not None:
            unpriced = next(i for i, line in enumerate(order.lines) if line.gross() is None)
            raise RequestRejectedError(
                "PRICE_UNKNOWN",
                f"lines.{unpriced} has no price: Lana would price it from its catalog, and the buyer "
                f"paid a stated total of {order.total} {order.currency} that cannot be verified",
                field=f"lines.{unpriced}.unit_price",
            )
        cart = _Cart(order.currency)
        shares = _discount_shares(order) if priced else [Decimal(0)] * len(order.lines)
        tags = [REFERENCE_TAG.format(tracking_id=delivery.reference)]
        for index, (line, share) in enumerate(zip(order.lines, shares, strict=True)):
            self._add_line(delivery, index, line, share, cart)
            tags += [f"line {index + 1} {name}: {value}" for name, value in line.options.items() if value]
        discount_code = order.coupon
        if priced:
            if order.shipping_total:
                cart.custom(SHIPPING_TITLE, order.shipping_total, 1, physical=False)
            if order.taxes_included and order.tax():
                tags.append(f"tax_included:{order.tax()}")
            elif not order.taxes_included and order.tax():
                cart.custom(TAX_TITLE, order.tax(), 1, physical=False)
            if order.coupon:
                tags.append(f"discount_code:{order.coupon}")
                discount_code = None  # already in the prices: Lana would take it off again
        if order.test:
            tags.append("test")
        self.check_total(cart.total(), order)
        buyer = order.buyer
        return LnOrderCreate(
            billing_address=_address(order.billing_address, "billing_address", order, required=False),
            shipping_address=_address(order.shipping_address, "shipping_address", order, required=True),
            currency=order.currency,
            custom_items=cart.custom_items or None,
            customer_email=buyer.email,
            mobile=None if buyer.email else (buyer.phone or None),
            discount_code=discount_code,
            gateway_id=settings.gateway_id or None,
            line_items=cart.line_items,
            tags=tags,
        )

    def _add_line(self, delivery: Delivery, index: int, line: OrderLine, share: Decimal, cart: _Cart) -> None:
        """The line as a variant (Lana's price is what the buyer paid, or no price is known) or as
        custom items at what the buyer paid per unit."""
        if line.sku is not None:
            entry = self.catalog_entry(delivery, line.sku)
            lana_price = catalog_price(entry.price, line.sku, cart.currency)
            gross = line.gross()
            paid_lanas = lana_price is not None and gross == lana_price * line.quantity
            if gross is None or (paid_lanas and not line.discount and not share):
                cart.variant(entry.variant_id, line.quantity, lana_price, where=f"line_items.{index}")
                return
        elif line.gross() is None:
            raise RequestRejectedError(
                "CUSTOM_PRODUCT_NEEDS_PRICE",
                f"custom product {line.name!r} needs a unit_price",
                field=f"lines.{index}.unit_price",
            )
        net = line.net()
        assert net is not None
        title = line.name or line.sku or ""
        if line.sku is not None and line.name is not None:
            title = f"{line.name} [{line.sku}]"
        physical = self.settings.custom_items_physical
        # priced by the buyer: the tax is in the order already (a Tax item, or inside the prices)
        taxable = False if delivery.order.priced else self.settings.custom_items_taxable
        cart.split(
            title, net - share, line.quantity, physical=physical, taxable=taxable, where=f"line_items.{index}"
        )

    def parse_create(self, response: requests.Response) -> ProviderResult:
        kind = self.classify_status(response.status_code)
        body = safe_json(response)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, body, kind)
        found = body[0] if isinstance(body, list) and body else body
        try:
            order = LnOrder.model_validate(found)
        except ValidationError:
            error = _error_of(body)
            if error is not None and error.code is not None:
                # a 2xx carrying an error envelope: Lana refused after all
                return self._error(response, body, ResultKind.PERMANENT)
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "2xx without an order id",
                unknown_result=True,
            )
        reference = str(order.number) if order.number is not None else None
        return self._result(response, kind, provider_order_id=order.id, provider_reference=reference)

    def build_lookup(self, delivery: Delivery) -> ProviderRequest:
        """Lana's order search for the reference tag (see the module docstring for the sources)."""
        return ProviderRequest(
            method="POST",
            url=f"{self.base_url}{SEARCH_PATH}",
            params={"shop_id": self.settings.shop_id, "limit": str(SEARCH_LIMIT), "offset": "0"},
            json=[
                {
                    "op": "eq",
                    "name": "tags",
                    "text": REFERENCE_TAG.format(tracking_id=delivery.reference),
                    "parent_index": -1,
                }
            ],
            headers={"Content-Type": "application/json"},
        )

    def parse_lookup(self, response: requests.Response) -> ProviderResult:
        """Only an order carrying exactly our reference tag is ours; the search's own filter is
        not trusted (an answer of unrelated orders is NOT_FOUND, never SUCCEEDED)."""
        kind = self.classify_status(response.status_code)
        body = safe_json(response)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, body, kind)
        items = body.get("items") if isinstance(body, dict) else body
        if not isinstance(items, list):
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "order search answered without an item list",
                unknown_result=True,
            )
        tag = _searched_tag(response)
        if tag is None:  # cannot check the answer against what was asked
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "order search answer without the tag it was asked for",
                unknown_result=True,
            )
        found: list[LnOrder] = []
        for entry in items:
            if not isinstance(entry, dict) or tag not in (entry.get("tags") or []):
                continue
            try:
                found.append(LnOrder.model_validate(entry))
            except ValidationError:
                continue
        number = found[0].number if len(found) == 1 else None
        return self.lookup_verdict(
            response,
            [o.id for o in found],
            f"Lana orders carry the tag {tag}",
            provider_reference=str(number) if number is not None else None,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _error(self, response: requests.Response, body: Any, kind: ResultKind) -> ProviderResult:
        error = _error_of(body)
        if error is None:
            return self._result(
                response, kind, f"LANA_{response.status_code}", response.reason or "no message"
            )
        if str(error.code) == str(RATE_LIMITED):
            kind = ResultKind.RETRYABLE
        message = error.message or response.reason or "no message"
        if _names_field((error.meta or {}).get("fields"), IDEMPOTENCY_HEADER):
            # the key was used by an earlier request with another body: that request was accepted,
            # so an order may exist; a person checks (never a PERMANENT failure, never a re-send)
            return self._result(
                response,
                ResultKind.REVIEW,
                "KEY_REUSED",
                f"Lana refused the create because its Idempotency-Key was already used: {message}",
                unknown_result=True,
            )
        fields = _field_list((error.meta or {}).get("fields"))
        if fields:
            message = f"{message} (fields: {fields})"
        code = error.code if error.code is not None else response.status_code
        return self._result(response, kind, f"LANA_{code}", message)


class _Cart:
    """The line items and custom items of the request, and the total Lana will compute from them."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.line_items: list[LnLineItem] = []
        self.custom_items: list[LnCustomItem] = []
        self._total = 0  # minor units
        self._known = True

    def variant(self, variant_id: str, quantity: int, price: Decimal | None, *, where: str) -> None:
        try:
            self.line_items.append(LnLineItem(variant_id=variant_id, quantity=quantity))
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", f"{where}.{_first_error(exc)}") from exc
        if price is None:
            self._known = False
        else:
            self._total += money.to_minor(price, self.currency) * quantity

    def custom(
        self, title: str, price: Decimal, quantity: int, *, physical: bool, where: str = "custom_items"
    ) -> None:
        units = money.to_minor(price, self.currency)
        self._custom(title, units, quantity, physical=physical, taxable=False, where=where)

    def split(
        self, title: str, net: Decimal, quantity: int, *, physical: bool, taxable: bool, where: str
    ) -> None:
        """`net` for `quantity` units as whole minor units per unit (`money.split`): one custom item
        when it divides, else two (the remainder's units one minor unit dearer), adding up to `net`."""
        for units, each in money.split(net, quantity, self.currency):
            price = money.to_minor(each, self.currency)
            self._custom(title, price, units, physical=physical, taxable=taxable, where=where)

    def _custom(
        self, title: str, price: int, quantity: int, *, physical: bool, taxable: bool, where: str
    ) -> None:
        try:
            self.custom_items.append(
                LnCustomItem(title=title, price=price, physical=physical, taxable=taxable)
            )
            self.line_items.append(
                LnLineItem(custom_item_index=LnIndex(value=len(self.custom_items) - 1), quantity=quantity)
            )
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", f"{where}.{_first_error(exc)}") from exc
        self._total += price * quantity

    def total(self) -> Decimal | None:
        """What Lana will charge (the sum of its lines), None when a catalog price is unknown."""
        return money.from_minor(self._total, self.currency) if self._known else None


def _discount_shares(order: CanonicalOrder) -> list[Decimal]:
    """The order discount spread over the lines in proportion to their net, in whole minor units
    (largest remainders get the odd units), so the shares add up to it exactly."""
    units = money.to_minor(order.order_discount, order.currency)
    nets = [money.to_minor(line.net() or Decimal(0), order.currency) for line in order.lines]
    base = sum(nets)
    if not units or not base:
        return [Decimal(0)] * len(nets)
    exact = [units * net for net in nets]
    shares = [e // base for e in exact]
    order_of_remainders = sorted(range(len(nets)), key=lambda i: (-(exact[i] % base), i))
    for i in order_of_remainders[: units - sum(shares)]:
        shares[i] += 1
    return [money.from_minor(share, order.currency) for share in shares]


@dataclass(frozen=True)
class _Missing:
    field: str
    code: str
    path: str  # the canonical Address field a refusal names (a name is first_name, then last_name)


_ADDRESS_NEEDS = (
    _Missing("name", "ADDRESS_NAME_REQUIRED", "first_name"),
    _Missing("province", "ADDRESS_PROVINCE_REQUIRED", "province"),
    _Missing("zip", "ADDRESS_ZIP_REQUIRED", "zip"),
)


def _address(
    address: Address | None, where: str, order: CanonicalOrder, *, required: bool
) -> LnAddress | None:
    """The address as Lana takes it. One it cannot take is left out (`required=False`) or refused."""
    if address is None:
        return None
    name = " ".join(n for n in (address.first_name, address.last_name) if n)
    if not name:
        name = " ".join(n for n in (order.buyer.first_name, order.buyer.last_name) if n)
    given = {"name": name, "province": address.province, "zip": address.zip}
    for need in _ADDRESS_NEEDS:
        if not given[need.field]:
            if not required:
                return None
            raise RequestRejectedError(
                need.code,
                f"{where}.{need.field}: Lana requires a {need.field} in an address, and this "
                f"{address.country} address has none",
                field=f"{where}.{need.path}",
            )
    try:
        return LnAddress(
            address1=address.address1,
            address2=address.address2,
            city=address.city,
            company=address.company,
            country=address.country,
            name=name,
            phone=address.phone,
            province=str(address.province),
            zip=str(address.zip),
        )
    except ValidationError as exc:
        if not required:
            return None
        raise RequestRejectedError("PROVIDER_LIMIT", f"{where}.{_first_error(exc)}") from exc


def _error_of(body: Any) -> LnError | None:
    """The error in `{"error": {...}}`, `{"errors": [...]}`, `[{...}]` or a bare `{code, message}`."""
    if isinstance(body, list):
        body = body[0] if body else None
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict):
        body = inner
    elif isinstance(body.get("errors"), list) and body["errors"] and isinstance(body["errors"][0], dict):
        body = body["errors"][0]
    elif isinstance(inner, str) and "message" not in body:
        body = {**body, "message": inner}
    if "code" not in body and "message" not in body:
        return None
    try:
        return LnError.model_validate(body)
    except ValidationError:
        return None


def _field_list(fields: Any) -> str:
    """`meta.fields` as `["name", ...]`, `[{field, message}]` or `{field: message}`, flattened."""
    parts: list[str] = []
    if isinstance(fields, dict):
        parts = [f"{name}: {text}" for name, text in fields.items()]
    elif isinstance(fields, list):
        for entry in fields:
            if isinstance(entry, dict):
                name = entry.get("field") or entry.get("name") or entry.get("path")
                text = entry.get("message") or entry.get("error")
                parts.append(f"{name}: {text}" if name and text else str(name or text or ""))
            else:
                parts.append(str(entry))
    return ", ".join(p for p in parts if p)


def _names_field(fields: Any, name: str) -> bool:
    """`meta.fields` names `name` (as `[{field}]`, `["name"]` or `{name: ...}`)."""
    if isinstance(fields, dict):
        return name in fields
    if isinstance(fields, list):
        return any((entry.get("field") if isinstance(entry, dict) else entry) == name for entry in fields)
    return False


def _searched_tag(response: requests.Response) -> str | None:
    """The reference tag the search asked for, read back from the request that was sent."""
    body = getattr(getattr(response, "request", None), "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return None
    try:
        options = json.loads(body)
    except ValueError:
        return None
    for option in options if isinstance(options, list) else []:
        if isinstance(option, dict) and option.get("name") == "tags" and isinstance(option.get("text"), str):
            text: str = option["text"]
            return text if text.startswith(REFERENCE_TAG.format(tracking_id="")) else None
    return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"
