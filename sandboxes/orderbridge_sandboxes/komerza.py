"""Komerza API sandbox (orders), mounted at `/komerza`.

Routes (relative to the mount, as on `https://api.komerza.com`):

* `POST /stores/{storeId}/orders` - create an order (Komerza's "Create order",
  `CreateDashboardOrderForm`): 200 with `{"success": true, "message": "Order created",
  "code": null, "data": <PublicOrder>}`.
* `GET  /stores/{storeId}/orders/{orderId}` - one order of the store: 200 with Komerza's
  `OrderResponse` as `data` (`{"order", "logs", "storeId", "storeName"}`); an unknown order is 404
  `NotFound`, an id that is not a uuid 400 `ValidationError`. There is no lookup by metadata,
  as on Komerza.
* `GET  /stores/{storeId}/orders` - the store's orders, newest first, as Komerza's
  `PageOrderPaginatedResponse` `{"success": true, "pages", "data": [PageOrder]}` (no metadata in a
  `PageOrder`: read one order for it); filters `email` (the customer's email, exact, ignoring
  case), `dateFrom`/`dateTo` (ISO 8601, inclusive, on `dateCreated`), `status`, `gateway`; paging
  `Page` (from 1) and `PageSize` (1..100, default 20). Source: Komerza's OpenAPI document as
  generated into its SDK (github.com/zraycd/komerza-sdk `src/generated/schema.ts`, "Get orders";
  `src/resources/orders.ts` `list()`). The sandbox's choices where that is silent: exact email
  match, the default and largest page size, newest first, a date that does not parse is 400
  `ValidationError`, a page past the last answers an empty `data`.
* `GET  /checkout/{orderId}` - stands in for Komerza's hosted checkout page (where a customer is
  redirected after the create): a small HTML page titled "Komerza sandbox checkout" with the
  order's amount, currency, items and status. No auth, no rate limit, never faulted; 404 (HTML)
  for an unknown order. Point the adapter's `checkout_url_template` at
  `<sandbox>/komerza/checkout/{order_id}`.

Every API answer is Komerza's wrapper `{"success", "message", "code", "data"}`; errors have
`success: false`, `data: null` and a `code`: 400 `ValidationError`, 401 `BadToken`, 403
`AccessDenied`, 404 `NotFound`, 415 `UnsupportedRequest`, 429 `RateLimited` (with `Retry-After`
in seconds), 500 `InternalServerError`. The rules enforced are listed in `RULES`; the limits are
the constants below.

Sources: the create-order page (seeds 000 and 001, docs.komerza.com "Create order": field
limits and the response); Komerza's error-code page (docs.komerza.com/api-reference/error-codes:
the wrapper on every error, the codes and their HTTP statuses, 403 `AccessDenied` for another
user's resources); Komerza's OpenAPI document (read through a client generated from it):
`CreateDashboardOrderForm`, `FormLineItem` (`productId`/`variantId` are uuids),
`PublicOrder` (adds `metadata`, `returnUrl`, `source`, fee fields), `OrderResponse` for the GET;
its generic 400 text mentions an `invalidFields` field, its generic 404 text says "one of the
objects referenced by the ID given in the URL or form was not found"; and the product brief
(`gateway` is the payment-method field, success is HTTP 200 with `success: true`).

Choices where the sources are silent (also in `RULES`):

* Binding follows ASP.NET Core's JSON defaults: property names match case-insensitively, unknown
  properties are ignored, numbers may come as numeric strings, `null` is "not given" except for
  `sendReceipt` (a bool); string lengths count UTF-16 code units; `emailAddress` uses .NET's
  `[EmailAddress]` rule (one `@`, neither first nor last); required strings must not be blank.
* A 400 lists every problem: `message` names the fields, `invalidFields` lists them and
  `errors` maps each (camelCase path, e.g. `items[0].quantity`) to its messages.
* A product or variant missing from the store's catalog is 404 `NotFound` (per the generic 404
  text), with the same `invalidFields`/`errors`; an unknown coupon or a gateway the store does not
  offer is 400 `ValidationError`.
* Auth: no or malformed `Authorization: Bearer` header, or a key no store accepts: 401
  `BadToken`; a key of another store: 403 `AccessDenied`; a valid key and an unknown store: 404.
* `countryCode` must be exactly two ASCII letters (the docs give only "max 2" and "ISO 3166-1
  alpha-2"); `returnUrl` must be an absolute http(s) URL; when `cost` is given, `items` is not
  read at all.
* Rate limit per store, default 60 requests per 60 s (Komerza publishes no figure); no quota
  headers, only `Retry-After` on a 429.

Account settings (`config/sandboxes.json`, under `komerza.accounts.<storeId>`): `token` (the API
key accepted; `tokens` for more), `rate_limit`, `name` (the store name), `catalog` (product uuid
-> `{variant uuid -> price}` or `{"name", "variants": {variant uuid -> price | {"price",
"name"}}}`; leave it out to accept any well-formed uuids at 10.00), `gateways` (when listed,
`gateway` must be one of them, case-insensitive), `coupons` (a list of codes, or code ->
`{"percentage"}` / `{"amount"}`; when given, `couponCode` must be one of them, case-insensitive),
`currency_code` (the store's currency, an ISO 4217 code; default USD).

Money: Komerza's create carries no currency; every amount of an order is in the store's currency
(`currencyCode` on the order) and kept to that currency's ISO 4217 minor units (JPY 0 decimals,
USD 2, KWD 3): line totals, the coupon's decrease (half up) and `amount` = items' catalog prices
(or `cost`) less the coupon. A `cost` with more decimals than the store currency has is 400
ValidationError on `cost` (a sandbox choice: Komerza publishes no rounding rule).

Not modelled: payment (orders stay `Pending` with `amountPaid` 0; the checkout page takes no
payment), gateway metadata (client secrets, crypto addresses stay null), affiliates (the code is
length-checked and kept, no discount), taxes, fees and volume discounts (all 0), stock and
per-variant quantity limits, custom fields, customers beyond a stable `customerId` per email,
delivery, webhooks, the store's default return URL, `ipInfo`/billing data on the GET, order lists
and searches, and API-key permission scopes (403 only for another store's key).
"""

from __future__ import annotations

import html
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from iso4217 import Currency
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orderbridge_sandboxes.config import AccountConfig, RateLimitConfig
from orderbridge_sandboxes.provider import ProviderRuntime, ProviderSandbox
from orderbridge_sandboxes.ratelimit import RateDecision
from orderbridge_sandboxes.state import OrderRecord

NAME = "komerza"
DEFAULT_RATE_LIMIT = RateLimitConfig(quota=60, window_ms=60_000)
DEFAULT_PRICE = Decimal("10.00")
DEFAULT_CURRENCY = "USD"
DEFAULT_STORE_NAME = "Sandbox store"
ORDER_STATUS = "Pending"
ORDER_SOURCE = "api"

AUTH_HEADER = "Authorization"
BEARER_RE = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)
#: Media types ASP.NET Core's JSON input formatter reads.
JSON_MIMETYPES: frozenset[str] = frozenset({"application/json", "text/json"})

# Komerza's limits (seed 000).
EMAIL_MAX = 256
GATEWAY_MAX = 256
COUPON_MAX = 32
AFFILIATE_MAX = 256
RETURN_URL_MAX = 2048
METADATA_MAX_KEYS = 20
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
IP_ADDRESS_MAX = 45
USER_AGENT_MAX = 512
COUNTRY_CODE_LENGTH = 2
COST_MIN = Decimal("0.01")
COST_MAX = Decimal("1000000")
QUANTITY_MIN = 1
INT32_MAX = 2**31 - 1

# Komerza's error codes.
CODE_VALIDATION = "ValidationError"
CODE_BAD_TOKEN = "BadToken"
CODE_ACCESS_DENIED = "AccessDenied"
CODE_NOT_FOUND = "NotFound"
CODE_CONFLICT = "ObjectConflict"
CODE_RATE_LIMITED = "RateLimited"
CODE_UNSUPPORTED = "UnsupportedRequest"
CODE_INTERNAL = "InternalServerError"
STATUS_CODES: dict[int, str] = {
    400: CODE_VALIDATION,
    401: CODE_BAD_TOKEN,
    403: CODE_ACCESS_DENIED,
    404: CODE_NOT_FOUND,
    409: CODE_CONFLICT,
    429: CODE_RATE_LIMITED,
}

#: The form's properties, as Komerza names them on the wire.
FORM_FIELDS: tuple[str, ...] = (
    "items",
    "cost",
    "gateway",
    "couponCode",
    "affiliateCode",
    "emailAddress",
    "returnUrl",
    "sendReceipt",
    "metadata",
    "ipAddress",
    "userAgent",
    "countryCode",
)
ITEM_FIELDS: tuple[str, ...] = ("productId", "variantId", "quantity")

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
NUMBER_RE = re.compile(r"^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")
INTEGER_RE = re.compile(r"^\s*-?\d+\s*$")

MSG_CREATED = "Order created"
MSG_FOUND = "Order retrieved"
MSG_BAD_TOKEN = "The provided API key is invalid, expired or malformed."
MSG_NO_TOKEN = "No API key was provided, send 'Authorization: Bearer <api key>'."
MSG_ACCESS_DENIED = "Your API key does not have permission to access this store."
MSG_STORE_NOT_FOUND = "The store was not found."
MSG_ORDER_NOT_FOUND = "The order was not found."
MSG_UNSUPPORTED_MEDIA = "The request body must be JSON, sent with 'Content-Type: application/json'."
MSG_INVALID = "The request contains invalid parameters: {fields}."
LIST_PAGE_SIZE = 20
LIST_PAGE_SIZE_MAX = 100
MSG_REFERENCE_NOT_FOUND = "One of the objects referenced in the form was not found: {fields}."
MSG_RATE_LIMITED = "You are being rate limited, try again in {seconds} seconds."
MSG_RATE_LIMITED_LATER = "You are being rate limited, try again later."
MSG_INTERNAL = "An unexpected error occurred, please try again later."

RULES: tuple[str, ...] = (
    "Auth: Authorization: Bearer <api key>. Missing, malformed or unknown key: 401 BadToken; the key "
    "of another store: 403 AccessDenied; an unknown store (with a valid key): 404 NotFound.",
    "POST needs a JSON body (application/json, text/json or application/*+json, else 415 "
    "UnsupportedRequest); an empty, malformed or non-object body is 400 ValidationError.",
    "Binding as ASP.NET Core: property names are case-insensitive, unknown properties are ignored, "
    "numbers may be numeric strings, lengths count UTF-16 code units, required strings are non-blank.",
    f"emailAddress: required, at most {EMAIL_MAX}, one '@' that is neither first nor last.",
    f"gateway: required, 1..{GATEWAY_MAX}; one of the store's gateways when it lists them.",
    f"cost: {COST_MIN}..{COST_MAX}; when given, items is ignored and the order has no line items.",
    "items (when cost is not given): a non-empty array of {productId (uuid), variantId (uuid), "
    f"quantity (integer >= {QUANTITY_MIN})}}; a product or variant not in the store's catalog is "
    "404 NotFound naming the item.",
    f"couponCode <= {COUPON_MAX} (one of the store's coupons when it lists them); affiliateCode <= "
    f"{AFFILIATE_MAX}; returnUrl <= {RETURN_URL_MAX}, an absolute http(s) URL; ipAddress <= "
    f"{IP_ADDRESS_MAX}; userAgent <= {USER_AGENT_MAX}; countryCode exactly 2 letters; sendReceipt a "
    "boolean (default true).",
    f"metadata: string -> string, at most {METADATA_MAX_KEYS} keys, keys <= {METADATA_KEY_MAX}, values "
    f"<= {METADATA_VALUE_MAX}.",
    "Validation errors: 400 {success: false, message naming the fields, code: ValidationError, "
    "data: null, invalidFields: [...], errors: {field: [messages]}}, every problem listed.",
    "Success: 200 {success: true, message, code: null, data: PublicOrder}: id uuid, status Pending, "
    "amountPaid 0, amount from the catalog prices (or cost) less the coupon, in the store's currency "
    "(currencyCode) to its ISO 4217 minor units (a cost with more decimals is 400 on cost), "
    "customer {emailAddress, countryCode, customerId}, metadata and returnUrl echoed, source api.",
    "GET /stores/{storeId}/orders/{orderId}: {data: {order, logs, storeId, storeName}}; 404 NotFound "
    "when unknown. No lookup by metadata.",
    "GET /stores/{storeId}/orders?email=&dateFrom=&dateTo=&status=&gateway=&Page=&PageSize=: "
    "{success: true, pages, data: [PageOrder {id, dateCreated, items, gateway, customerEmail, status, "
    "currencyCode, amountPaid, amount, coupon}]}, newest first; PageSize 1..100 (default 20).",
    "GET /checkout/{orderId}: HTML 'Komerza sandbox checkout' page with the amount (no auth).",
    "Rate limit per store (default 60 per 60000 ms): 429 RateLimited with Retry-After (seconds).",
)


# --- account settings ----------------------------------------------------------------------------


def canonical_uuid(value: Any) -> str | None:
    """The lower-case hyphenated form of a uuid string, or None if `value` is not one."""
    if not isinstance(value, str) or not UUID_RE.match(value.strip()):
        return None
    return str(uuid.UUID(value.strip()))


def _uuid_keys(value: dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    keys: dict[str, Any] = {}
    for key, item in value.items():
        canonical = canonical_uuid(key)
        if canonical is None:
            raise ValueError(f"{what} id {key!r} is not a uuid")
        keys[canonical] = item
    return keys


def _is_bare_number(value: Any) -> bool:
    return isinstance(value, int | float | str | Decimal) and not isinstance(value, bool)


class KomerzaVariant(BaseModel):
    """A variant of a catalog product. A bare number in the config means `{"price": n}`."""

    model_config = ConfigDict(extra="forbid")

    price: Decimal = Field(default=DEFAULT_PRICE, ge=0)
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_price(cls, data: Any) -> Any:
        return {"price": data} if _is_bare_number(data) else data


class KomerzaProduct(BaseModel):
    """A catalog product. A mapping without `variants`/`name` is taken as its variants."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    variants: dict[str, KomerzaVariant] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _variant_map(cls, data: Any) -> Any:
        if isinstance(data, dict) and "variants" not in data and "name" not in data:
            return {"variants": data}
        return data

    @field_validator("variants", mode="before")
    @classmethod
    def _variant_ids(cls, value: Any) -> Any:
        return _uuid_keys(value, "variant") if isinstance(value, dict) else value


class KomerzaCoupon(BaseModel):
    """A coupon: a percentage off, a fixed amount off, or (neither) a code that takes nothing off."""

    model_config = ConfigDict(extra="forbid")

    percentage: Decimal | None = Field(default=None, gt=0, le=100)
    amount: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> KomerzaCoupon:
        if self.percentage is not None and self.amount is not None:
            raise ValueError("a coupon has a percentage or an amount, not both")
        return self


class KomerzaAccount(AccountConfig):
    """A store, keyed by its store id."""

    name: str = DEFAULT_STORE_NAME
    catalog: dict[str, KomerzaProduct] | None = None
    gateways: list[str] | None = None
    coupons: dict[str, KomerzaCoupon] | None = None
    currency_code: str = DEFAULT_CURRENCY

    @field_validator("catalog", mode="before")
    @classmethod
    def _product_ids(cls, value: Any) -> Any:
        return _uuid_keys(value, "product") if isinstance(value, dict) else value

    @field_validator("coupons", mode="before")
    @classmethod
    def _coupon_list(cls, value: Any) -> Any:
        return {code: {} for code in value} if isinstance(value, list) else value

    @field_validator("currency_code")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not CURRENCY_RE.match(value) or minor_units(value) is None:
            raise ValueError("currency_code must be an ISO 4217 currency code, e.g. USD")
        return value

    def gateway(self, given: str) -> str | None:
        """The store's spelling of `given` if it offers that gateway (any gateway when none listed)."""
        if self.gateways is None:
            return given
        return next((g for g in self.gateways if g.casefold() == given.casefold()), None)

    def coupon(self, code: str) -> tuple[str, KomerzaCoupon] | None:
        """The store's coupon for `code` (any code, taking nothing off, when none are listed)."""
        if self.coupons is None:
            return code, KomerzaCoupon()
        return next(((c, v) for c, v in self.coupons.items() if c.casefold() == code.casefold()), None)


# --- binding and validation ----------------------------------------------------------------------


def utf16_length(text: str) -> int:
    """The length .NET reports for `text` (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def bind(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`data`'s known properties under their wire names, matched case-insensitively (last one wins)."""
    by_folded = {name.casefold(): name for name in names}
    bound: dict[str, Any] = {}
    for key, value in data.items():
        name = by_folded.get(str(key).casefold())
        if name is not None:
            bound[name] = value
    return bound


def is_email(value: str) -> bool:
    """.NET's `[EmailAddress]`: exactly one '@', neither the first nor the last character."""
    if "\r" in value or "\n" in value:
        return False
    at = value.find("@")
    return 0 < at < len(value) - 1 and at == value.rfind("@")


def is_http_url(value: str) -> bool:
    if any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def parse_number(value: Any) -> Decimal | None:
    """A JSON number, or a numeric string (ASP.NET reads numbers from strings); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    if isinstance(value, str) and NUMBER_RE.match(value):
        return Decimal(value.strip())
    return None


def parse_int32(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and INTEGER_RE.match(value):
        number = int(value)
    else:
        return None
    return number if -INT32_MAX - 1 <= number <= INT32_MAX else None


@dataclass
class Problems:
    """Field -> messages, in the order found."""

    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def required(self, path: str) -> None:
        self.add(path, f"The {path} field is required.")

    def too_long(self, path: str, limit: int, minimum: int = 0) -> None:
        if minimum:
            self.add(
                path,
                f"The field {path} must be a string with a minimum length of {minimum} and a maximum "
                f"length of {limit}.",
            )
        else:
            self.add(path, f"The field {path} must be a string with a maximum length of {limit}.")

    def not_a(self, path: str, kind: str) -> None:
        self.add(path, f"The JSON value of {path} could not be converted to {kind}.")

    @property
    def fields(self) -> list[str]:
        return list(self.errors)

    def __bool__(self) -> bool:
        return bool(self.errors)


@dataclass
class ItemRef:
    product_id: str
    variant_id: str
    quantity: int


@dataclass
class Draft:
    """A valid form, before the catalog is consulted."""

    email: str
    gateway: str
    items: list[ItemRef]
    cost: Decimal | None
    coupon_code: str | None
    affiliate_code: str | None
    return_url: str | None
    send_receipt: bool
    metadata: dict[str, str | None] | None
    ip_address: str | None
    user_agent: str | None
    country_code: str | None


def _string(
    p: Problems, path: str, value: Any, limit: int, *, required: bool = False, minimum: int = 0
) -> str | None:
    if value is None:
        if required:
            p.required(path)
        return None
    if not isinstance(value, str):
        p.not_a(path, "a string")
        return None
    if required and not value.strip():
        p.required(path)
        return None
    if not minimum <= utf16_length(value) <= limit:
        p.too_long(path, limit, minimum)
        return None
    return value


def _items(p: Problems, value: Any) -> list[ItemRef]:
    if value is None:
        p.add("items", "The items field is required when cost is not set.")
        return []
    if not isinstance(value, list):
        p.not_a("items", "an array")
        return []
    if not value:
        p.add("items", "At least one item is required when cost is not set.")
        return []
    refs: list[ItemRef] = []
    for index, raw in enumerate(value):
        where = f"items[{index}]"
        if not isinstance(raw, dict):
            p.not_a(where, "an object")
            continue
        item = bind(raw, ITEM_FIELDS)
        ids: dict[str, str] = {}
        for key in ("productId", "variantId"):
            path = f"{where}.{key}"
            if item.get(key) is None:
                p.required(path)
            elif (canonical := canonical_uuid(item[key])) is None:
                p.add(path, f"The value of {path} is not a valid uuid.")
            else:
                ids[key] = canonical
        quantity = item.get("quantity")
        path = f"{where}.quantity"
        number = parse_int32(quantity)
        if quantity is None:
            p.required(path)
        elif number is None:
            p.not_a(path, "an integer")
        elif number < QUANTITY_MIN:
            p.add(path, f"The field {path} must be at least {QUANTITY_MIN}.")
        elif len(ids) == 2:
            refs.append(ItemRef(ids["productId"], ids["variantId"], number))
    return refs


def _metadata(p: Problems, value: Any) -> dict[str, str | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        p.not_a("metadata", "an object of strings")
        return None
    if len(value) > METADATA_MAX_KEYS:
        p.add("metadata", f"The metadata field can have at most {METADATA_MAX_KEYS} keys, not {len(value)}.")
    for key, item in value.items():
        if utf16_length(key) > METADATA_KEY_MAX:
            p.add(
                "metadata",
                f"The metadata key '{key[:METADATA_KEY_MAX]}...' is longer than "
                f"{METADATA_KEY_MAX} characters.",
            )
        if item is not None and not isinstance(item, str):
            p.not_a(f"metadata.{key}", "a string")
        elif item is not None and utf16_length(item) > METADATA_VALUE_MAX:
            p.add(
                f"metadata.{key}",
                f"The metadata value of '{key}' is longer than {METADATA_VALUE_MAX} characters.",
            )
    return value


def _country(p: Problems, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        p.not_a("countryCode", "a string")
        return None
    if not COUNTRY_RE.match(value):
        p.add(
            "countryCode",
            f"The countryCode field must be a {COUNTRY_CODE_LENGTH}-letter ISO 3166-1 alpha-2 code.",
        )
        return None
    return value.upper()


def minor_units(currency: str) -> int | None:
    """ISO 4217 decimals of `currency` (None: not a currency code)."""
    try:
        return int(Currency(currency).exponent or 0)
    except (ValueError, KeyError):
        return None


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-(minor_units(currency) or 0))


def validate_form(body: dict[str, Any], account: KomerzaAccount) -> tuple[Draft | None, Problems]:
    """The form as Komerza reads it, and every problem it would report (400)."""
    p = Problems()
    form = bind(body, FORM_FIELDS)

    email = _string(p, "emailAddress", form.get("emailAddress"), EMAIL_MAX, required=True)
    if email is not None and not is_email(email):
        p.add("emailAddress", "The emailAddress field is not a valid e-mail address.")

    gateway = _string(p, "gateway", form.get("gateway"), GATEWAY_MAX, required=True, minimum=1)
    if gateway is not None:
        offered = account.gateway(gateway)
        if offered is None:
            p.add("gateway", f"The gateway '{gateway}' is not enabled for this store.")
        gateway = offered

    cost: Decimal | None = None
    if form.get("cost") is not None:
        cost = parse_number(form["cost"])
        if cost is None:
            p.not_a("cost", "a number")
        elif not COST_MIN <= cost <= COST_MAX:
            p.add("cost", f"The field cost must be between {COST_MIN} and {COST_MAX}.")
            cost = None
        elif cost != cost.quantize(quantum(account.currency_code)):
            places = minor_units(account.currency_code)
            p.add(
                "cost",
                f"The field cost must have at most {places} decimal places in the store's currency "
                f"({account.currency_code}).",
            )
            cost = None
    items = _items(p, form.get("items")) if form.get("cost") is None else []

    coupon_code = _string(p, "couponCode", form.get("couponCode"), COUPON_MAX)
    if coupon_code is not None and not coupon_code.strip():
        coupon_code = None
    if coupon_code is not None and account.coupon(coupon_code) is None:
        p.add("couponCode", f"The coupon code '{coupon_code}' does not exist in this store.")

    affiliate_code = _string(p, "affiliateCode", form.get("affiliateCode"), AFFILIATE_MAX)
    return_url = _string(p, "returnUrl", form.get("returnUrl"), RETURN_URL_MAX)
    if return_url is not None and not is_http_url(return_url):
        p.add("returnUrl", "The returnUrl field is not a valid fully-qualified http or https URL.")

    send_receipt = form.get("sendReceipt", True)
    if not isinstance(send_receipt, bool):
        p.not_a("sendReceipt", "a boolean")

    metadata = _metadata(p, form.get("metadata"))
    ip_address = _string(p, "ipAddress", form.get("ipAddress"), IP_ADDRESS_MAX)
    user_agent = _string(p, "userAgent", form.get("userAgent"), USER_AGENT_MAX)
    country_code = _country(p, form.get("countryCode"))

    if p:
        return None, p
    assert email is not None and gateway is not None
    return (
        Draft(
            email=email,
            gateway=gateway,
            items=items,
            cost=cost,
            coupon_code=coupon_code,
            affiliate_code=affiliate_code,
            return_url=return_url,
            send_receipt=bool(send_receipt),
            metadata=metadata,
            ip_address=ip_address,
            user_agent=user_agent,
            country_code=country_code,
        ),
        p,
    )


# --- pricing -------------------------------------------------------------------------------------


@dataclass
class Line:
    product_id: str
    variant_id: str
    product_name: str
    variant_name: str
    quantity: int
    price: Decimal
    currency: str = DEFAULT_CURRENCY

    @property
    def total(self) -> Decimal:
        return money(self.price * self.quantity, self.currency)


def money(amount: Decimal, currency: str) -> Decimal:
    """`amount` in `currency`'s minor units (half up)."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def resolve_lines(draft: Draft, account: KomerzaAccount) -> tuple[list[Line], Problems]:
    """The draft's items priced from the catalog, and the references the store does not have (404)."""
    p = Problems()
    lines: list[Line] = []
    for index, ref in enumerate(draft.items):
        where = f"items[{index}]"
        if account.catalog is None:
            lines.append(
                Line(
                    ref.product_id,
                    ref.variant_id,
                    f"Product {ref.product_id[:8]}",
                    f"Variant {ref.variant_id[:8]}",
                    ref.quantity,
                    DEFAULT_PRICE,
                    account.currency_code,
                )
            )
            continue
        product = account.catalog.get(ref.product_id)
        if product is None:
            p.add(f"{where}.productId", f"The product {ref.product_id} was not found in this store.")
            continue
        variant = product.variants.get(ref.variant_id)
        if variant is None:
            p.add(
                f"{where}.variantId",
                f"The variant {ref.variant_id} was not found in product {ref.product_id}.",
            )
            continue
        lines.append(
            Line(
                ref.product_id,
                ref.variant_id,
                product.name or f"Product {ref.product_id[:8]}",
                variant.name or f"Variant {ref.variant_id[:8]}",
                ref.quantity,
                variant.price,
                account.currency_code,
            )
        )
    return lines, p


def page_order(order: dict[str, Any]) -> dict[str, Any]:
    """The `PageOrder` of an order: what the list answers (no metadata, as on Komerza)."""
    return {
        "id": order["id"],
        "dateCreated": order["dateCreated"],
        "items": order.get("items") or [],
        "gateway": order.get("gateway"),
        "customerEmail": (order.get("customer") or {}).get("emailAddress"),
        "status": order.get("status"),
        "currencyCode": order.get("currencyCode"),
        "amountPaid": order.get("amountPaid"),
        "amount": order.get("amount"),
        "coupon": order.get("coupon"),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(amount: Decimal) -> float:
    return float(amount)


def build_order(
    store_id: str, draft: Draft, lines: list[Line], account: KomerzaAccount, now: datetime
) -> dict[str, Any]:
    """The order as Komerza answers it (`PublicOrder`)."""
    created = _iso(now)
    subtotal = draft.cost if draft.cost is not None else sum((line.total for line in lines), Decimal(0))
    currency = account.currency_code
    subtotal = money(subtotal, currency)

    coupon: dict[str, Any] | None = None
    decrease = Decimal(0)
    if draft.coupon_code is not None:
        found = account.coupon(draft.coupon_code)
        assert found is not None
        code, rule = found
        if rule.percentage is not None:
            decrease = money(subtotal * rule.percentage / 100, currency)
        elif rule.amount is not None:
            decrease = min(subtotal, money(rule.amount, currency))
        coupon = {
            "id": str(uuid.uuid4()),
            "dateCreated": created,
            "percentageDecrease": _number(rule.percentage) if rule.percentage is not None else None,
            "netDecrease": _number(decrease),
            "code": code,
            "couponId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"komerza:{store_id}:coupon:{code.casefold()}")),
        }

    return {
        "id": str(uuid.uuid4()),
        "dateCreated": created,
        "items": [
            {
                "id": str(uuid.uuid4()),
                "dateCreated": created,
                "productName": line.product_name,
                "productId": line.product_id,
                "variantId": line.variant_id,
                "variantName": line.variant_name,
                "amount": _number(line.price),
                "lineTotal": _number(line.total),
                "additionalFeePercentage": 0,
                "additionalFeeAmount": 0,
                "additionalFixedFeeAmount": 0,
                "volumeDiscountAmount": 0,
                "quantity": line.quantity,
            }
            for line in lines
        ],
        "currencyCode": account.currency_code,
        "gateway": draft.gateway,
        "customer": {
            "id": str(uuid.uuid4()),
            "dateCreated": created,
            "countryCode": draft.country_code,
            "emailAddress": draft.email,
            "customerId": str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"komerza:{store_id}:customer:{draft.email.casefold()}")
            ),
        },
        "gatewayMetadata": {
            "id": str(uuid.uuid4()),
            "dateCreated": created,
            "transactionId": None,
            "clientSecret": None,
            "note": None,
            "cryptocurrencyAddress": None,
            "cryptocurrencyAmount": None,
            "cryptocurrencyExpiration": None,
        },
        "status": ORDER_STATUS,
        "amountPaid": 0,
        "amount": _number(max(Decimal(0), subtotal - decrease)),
        "coupon": coupon,
        "affiliateDiscount": None,
        "globalGatewayFeePercentage": 0,
        "globalGatewayFeeAmount": 0,
        "globalGatewayFixedFee": 0,
        "globalGatewayFixedFeeAmount": 0,
        "deliveredItems": [],
        "chargeback": None,
        "customFieldAnswers": {},
        "returnUrl": draft.return_url,
        "metadata": draft.metadata,
        "source": ORDER_SOURCE,
    }


def checkout_page(record: OrderRecord, store_name: str) -> str:
    """The sandbox's hosted checkout page for an order."""
    order = record.order
    unit = quantum(order["currencyCode"])
    amount = f"{Decimal(str(order['amount'])).quantize(unit)} {order['currencyCode']}"
    esc = html.escape
    rows = "".join(
        f"<li>{esc(str(i['quantity']))} x {esc(i['productName'])} ({esc(i['variantName'])}): "
        f"{Decimal(str(i['lineTotal'])).quantize(unit)}</li>"
        for i in order["items"]
    )
    back = (
        f'<p><a id="return" href="{esc(order["returnUrl"])}">Return to the store</a></p>'
        if order.get("returnUrl")
        else ""
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>Komerza sandbox checkout</title></head>\n'
        f'<body data-order-id="{esc(order["id"])}">\n'
        "<h1>Komerza sandbox checkout</h1>\n"
        f"<p>{esc(store_name)}: order <code>{esc(order['id'])}</code></p>\n"
        f'<p>Amount due: <strong id="amount">{esc(amount)}</strong></p>\n'
        f'<p>Status: <span id="status">{esc(order["status"])}</span>; paying with '
        f"{esc(order['gateway'])}</p>\n"
        f"<ul>{rows}</ul>\n{back}"
        "<p>This is a local sandbox: no payment is taken.</p>\n"
        "</body></html>\n"
    )


def not_found_page() -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>Komerza sandbox checkout</title></head>\n'
        "<body><h1>Komerza sandbox checkout</h1><p>Order not found.</p></body></html>\n"
    )


# --- the sandbox ---------------------------------------------------------------------------------


def wrapper(success: bool, message: str | None, code: str | None, data: Any = None) -> dict[str, Any]:
    return {"success": success, "message": message, "code": code, "data": data}


def code_for(status: int) -> str:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return CODE_INTERNAL if status >= 500 else CODE_UNSUPPORTED


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype in JSON_MIMETYPES or (mimetype.startswith("application/") and mimetype.endswith("+json"))


class KomerzaSandbox(ProviderSandbox):
    name: ClassVar[str] = NAME
    account_model: ClassVar[type[AccountConfig]] = KomerzaAccount
    default_rate_limit: ClassVar[RateLimitConfig] = DEFAULT_RATE_LIMIT
    recorded_headers: ClassVar[tuple[str, ...]] = ("Content-Type", "Accept", "User-Agent", AUTH_HEADER)
    secret_headers: ClassVar[frozenset[str]] = frozenset({AUTH_HEADER.lower()})
    rules: ClassVar[tuple[str, ...]] = RULES

    def error_response(self, status: int, message: str) -> Response:
        response = jsonify(wrapper(False, message, code_for(status)))
        response.status_code = status
        return response

    def server_error_response(self) -> Response:
        return self.error_response(500, MSG_INTERNAL)

    @staticmethod
    def problems(status: int, template: str, problems: Problems) -> Response:
        body = wrapper(False, template.format(fields=", ".join(problems.fields)), code_for(status))
        body["invalidFields"] = problems.fields
        body["errors"] = problems.errors
        response = jsonify(body)
        response.status_code = status
        return response

    def rate_limited_response(self, decision: RateDecision | None, retry_after: int | None) -> Response:
        message = MSG_RATE_LIMITED.format(seconds=retry_after) if retry_after else MSG_RATE_LIMITED_LATER
        response = self.error_response(429, message)
        if retry_after is not None:
            response.headers.update(self.retry_after_headers(retry_after))
        return response

    # --- routes -----------------------------------------------------------------------------------

    def register(self, bp: Blueprint, rt: ProviderRuntime) -> None:
        def authorize(store_id: str, *, create: bool) -> KomerzaAccount | Response:
            match = BEARER_RE.match(request.headers.get(AUTH_HEADER, ""))
            if match is None:
                return self.error_response(401, MSG_NO_TOKEN)
            key = match.group(1)
            account = rt.account(store_id)
            if account is None or not account.accepts(key):
                known_elsewhere = any(a.accepts(key) for a in rt.config.accounts.values())
                if not known_elsewhere:
                    return self.error_response(401, MSG_BAD_TOKEN)
                if account is None:
                    return self.error_response(404, MSG_STORE_NOT_FOUND)
                return self.error_response(403, MSG_ACCESS_DENIED)
            early = rt.gate(store_id, create=create)
            if early is not None:
                return early
            assert isinstance(account, KomerzaAccount)
            return account

        def invalid_body(message: str) -> Response:
            p = Problems()
            p.add("$", message)
            return self.problems(400, MSG_INVALID, p)

        def find(order_id: str, store_id: str | None = None) -> OrderRecord | None:
            return next((r for r in rt.state.orders(store_id) if r.order["id"] == order_id), None)

        @bp.post("/stores/<store_id>/orders")
        def create_order(store_id: str) -> Response:
            account = authorize(store_id, create=True)
            if isinstance(account, Response):
                return account
            if not is_json_mimetype(request.mimetype):
                return self.error_response(415, MSG_UNSUPPORTED_MEDIA)
            raw = request.get_data()
            if not raw.strip():
                return invalid_body("A non-empty request body is required.")
            try:
                body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
            except (UnicodeDecodeError, ValueError) as exc:
                return invalid_body(f"The request body is not valid JSON: {exc}.")
            if not isinstance(body, dict):
                return invalid_body("The request body must be a JSON object.")
            draft, problems = validate_form(body, account)
            if draft is None:
                return self.problems(400, MSG_INVALID, problems)
            lines, missing = resolve_lines(draft, account)
            if missing:
                return self.problems(404, MSG_REFERENCE_NOT_FOUND, missing)
            now = datetime.now(UTC)
            record = rt.record_order(
                store_id,
                lambda _seq: build_order(store_id, draft, lines, account, now),
                extra=lambda _seq, _order: {
                    "sendReceipt": draft.send_receipt,
                    "ipAddress": draft.ip_address,
                    "userAgent": draft.user_agent,
                    "affiliateCode": draft.affiliate_code,
                },
            )
            return jsonify(wrapper(True, MSG_CREATED, None, record.order))

        @bp.get("/stores/<store_id>/orders")
        def list_orders(store_id: str) -> Response:
            account = authorize(store_id, create=False)
            if isinstance(account, Response):
                return account
            args = request.args
            p = Problems()
            bounds: dict[str, datetime] = {}
            for name in ("dateFrom", "dateTo"):
                if name in args:
                    try:
                        moment = datetime.fromisoformat(args[name].replace("Z", "+00:00"))
                    except ValueError:
                        p.add(name, f"The value '{args[name]}' is not valid for {name}.")
                        continue
                    bounds[name] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            paging: dict[str, int] = {}
            for name, default, high in (("Page", 1, None), ("PageSize", LIST_PAGE_SIZE, LIST_PAGE_SIZE_MAX)):
                raw = args.get(name)
                if raw is None:
                    paging[name] = default
                elif not re.fullmatch(r"\d{1,9}", raw) or int(raw) < 1 or (high and int(raw) > high):
                    p.add(name, f"The value '{raw}' is not valid for {name}.")
                else:
                    paging[name] = int(raw)
            if p:
                return self.problems(400, MSG_INVALID, p)
            email = (args.get("email") or "").casefold()

            def keep(order: dict[str, Any]) -> bool:
                created = datetime.fromisoformat(order["dateCreated"].replace("Z", "+00:00"))
                customer = order.get("customer") or {}
                return (
                    (not email or str(customer.get("emailAddress") or "").casefold() == email)
                    and ("dateFrom" not in bounds or created >= bounds["dateFrom"])
                    and ("dateTo" not in bounds or created <= bounds["dateTo"])
                    and ("status" not in args or order.get("status") == args["status"])
                    and ("gateway" not in args or order.get("gateway") == args["gateway"])
                )

            found = [page_order(r.order) for r in reversed(rt.state.orders(store_id)) if keep(r.order)]
            size, number = paging["PageSize"], paging["Page"]
            pages = max(1, -(-len(found) // size))
            return jsonify(
                {"success": True, "pages": pages, "data": found[(number - 1) * size : number * size]}
            )

        @bp.get("/stores/<store_id>/orders/<order_id>")
        def get_order(store_id: str, order_id: str) -> Response:
            account = authorize(store_id, create=False)
            if isinstance(account, Response):
                return account
            canonical = canonical_uuid(order_id)
            if canonical is None:
                p = Problems()
                p.add("orderId", f"The value '{order_id}' is not a valid uuid.")
                return self.problems(400, MSG_INVALID, p)
            record = find(canonical, store_id)
            if record is None:
                return self.error_response(404, MSG_ORDER_NOT_FOUND)
            order = {**record.order, "storeId": store_id, **record.extra}
            data = {"order": order, "logs": [], "storeId": store_id, "storeName": account.name}
            return jsonify(wrapper(True, MSG_FOUND, None, data))

        @bp.get("/checkout/<order_id>")
        def checkout(order_id: str) -> Response:
            canonical = canonical_uuid(order_id)
            record = find(canonical) if canonical is not None else None
            if record is None:
                return Response(not_found_page(), status=404, mimetype="text/html")
            account = rt.config.accounts.get(record.account)
            store_name = account.name if isinstance(account, KomerzaAccount) else DEFAULT_STORE_NAME
            return Response(checkout_page(record, store_name), mimetype="text/html")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not valid JSON")
