"""Lana Commerce API sandbox (JSON API), mounted at `/lana`.

Routes (relative to the mount, as on `https://api.lana.dev`):

* `POST /orders.json?shop_id=sh_...` - create an order. The body is an ARRAY holding exactly one
  OrderCreate; the answer is 200 with an array holding the one Order created. `uuid` and
  `updated_at` are accepted as query parameters (the seed lists them) and ignored.
* `GET  /orders.json?shop_id=sh_...` - orders of the shop, oldest first; `ids=or_a,or_b` (each must
  exist, else 404), `uuid=<order uuid>`; `tag=<tag>` is a sandbox convenience, not a Lana filter.
* `POST /search/orders.json?shop_id=sh_...&limit=&offset=&sort_by=&sort_desc=` - Lana's order
  search ("Search Orders", docs.lana.dev/commerce/query/searchOrders; the request as Lana's CLI
  sends it, github.com/lana-commerce/lana-cli `generated/orders.ts`, `orders search`): the body is an
  array of search options `{op, name, text, number, boolean, nil, now, zero, context,
  parent_index}`; the answer `{"items": [Order...], "total": n}`. Modelled: `op` `eq` on `tags`
  (orders whose tags hold that exact text), `id`, `number`, `customer_email`, `currency`; `op`
  `and` as the parent of others (`parent_index`); anything else is 1000 `invalid_value` on
  `<index>.op` / `<index>.name`. The vocabulary of ops and names is the sandbox's choice: the
  public material read shows the option's fields, not the names Lana's order search accepts.

Every request needs `Authorization: Bearer <JWT>`. An `Idempotency-Key` header makes a create
safe to retry, for a short time only: a later request with the same key and a byte-identical body
answers the first result again (same status, same body) without creating anything, while the key
is remembered. Lana keeps a key "for an unspecified interval" (docs.lana.dev "Idempotency"), so the
sandbox forgets it after the shop's `idempotency_ttl_seconds` (default 60 s, deliberately short):
after that the same key and body create a SECOND order, as they may on Lana. A client that wants to
know whether an earlier create went through must search (above), not replay. Keys are per shop.

Sources: the create-order page (seed 003); Lana's docs (docs.lana.dev: "Idempotency",
"Authentication", "JSON API"); the types of Lana's own JSON client, `@lana-commerce/core`
(`json/commerceTypes.d.ts`: `OrderCreate`, `AddressCreate`, `OrderLineItemCreate`,
`OrderCustomItemCreate`, `LineItemFieldCreate`, `Order`; `generated/codes.d.ts`: the error codes
and their `meta`). What those sources say and this sandbox follows:

* Errors are `{"error": {"code", "message", "meta"}}` (the client reads `error` off each answer).
  Codes: 401 unauthorized, 404 not found, 429 too many requests (`meta.rate_info {cap, count,
  rate}`), 500, 999 JWT validation failed, 1000 invalid input (`meta.fields [{field, problem, min,
  max}]`, `field` a dotted path into the body such as `0.billing_address.province`), 1001 order
  error (`meta.errors [{code, line_item_index, subject, min, max}]`, e.g. `out_of_stock`),
  1030 parsing failure, 1132 invalid input count (anything but exactly one OrderCreate).
  Each field entry also carries `message`, a human sentence the sandbox adds.
* Money is integer minor units (cents for USD): variant prices, custom item `price`, every total.
* Idempotency (docs): only a successful first request is cached; a failed one may be retried
  with the same key and is evaluated afresh.

Choices where the sources are silent (documented in `RULES` too): HTTP 400 for codes 1000, 1001,
1030 and 1132; the same `Idempotency-Key` with a different body is refused with HTTP 422 code 1000
(field `Idempotency-Key`, problem `duplicate`) instead of creating a second order; at least one
line item is required; `Retry-After` (seconds) is sent with every 429.

Account settings (`config/sandboxes.json`, under `lana.accounts.<shop_id>`): `token` (the JWT the
shop accepts; `tokens` for more), `rate_limit` (default 120 requests per 60 s), `catalog`
(variant id -> price in minor units, or `{"price", "inventory", "title", "sku"}`; leave it out to
accept any well-formed variant id at 1000), `discount_codes` (when listed, a `discount_code`
must be one of them, case-insensitive), `gateways` (when listed, `gateway_id` must be one of
them), `currency` (the shop's default currency, USD), `currencies` (when listed, the currencies
the shop sells in; an order in another is 1000 `invalid_value` on `0.currency`),
`idempotency_ttl_seconds` (how long an `Idempotency-Key` is remembered, default 60; 0 forgets at
once).

Money: integers in the currency's ISO 4217 minor units (JPY, XOF 0 decimals; USD 2; KWD, IQD 3);
a `currency` that is not an ISO 4217 code is 1000 `invalid_value`. The order's `total_price` is
what Lana charges: the sum of its line items, each at its variant's catalog price or its custom
item's `price`, times the quantity (no tax, shipping or discount is modelled, see below).

Not modelled: JWT signatures and expiry (the token must look like a JWT and equal the shop's),
permission bits, province codes (any non-empty `province` is accepted), product field sets (line
item `fields` are checked for shape only), subscriptions, shipping rates, taxes, discounts
(a valid code is echoed, `total_discounts` stays 0), customers, sales channels and short address
ids (well-formed ids are accepted), payments, the relay (batch) endpoint, order modify/delete.
Addresses are echoed as sent (Lana answers `country`/`province` as resource links), and created
orders are in state `cart`, `unpaid`, `unfulfilled`. Inventory is counted from the sandbox's own
orders (available = `inventory` - quantities already ordered).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from flask import Blueprint, Response, jsonify, request
from iso4217 import Currency
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orderbridge_sandboxes.config import AccountConfig, RateLimitConfig
from orderbridge_sandboxes.provider import ProviderRuntime, ProviderSandbox
from orderbridge_sandboxes.ratelimit import RateDecision
from orderbridge_sandboxes.state import OrderRecord

NAME = "lana"
FIRST_ORDER_NUMBER = 1001
DEFAULT_RATE_LIMIT = RateLimitConfig(quota=120, window_ms=60_000)
DEFAULT_VARIANT_PRICE = 1000  # minor units
DEFAULT_CURRENCY = "USD"
ORDER_STATE = "cart"
FINANCIAL_STATUS = "unpaid"
FULFILLMENT_STATUS = "unfulfilled"
NO_INDEX = -1

AUTH_HEADER = "Authorization"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Lana keeps idempotency keys for an unspecified interval (docs.lana.dev, "Idempotency"): the
# sandbox assumes a short one, so no test can lean on a replay long after the first request.
IDEMPOTENCY_TTL_SECONDS = 60.0
SEARCH_LIMIT_DEFAULT = 50
SEARCH_LIMIT_MAX = 100
SEARCH_FIELDS = ("tags", "id", "number", "customer_email", "currency")

# Lana's error codes (`ErrorCode` in @lana-commerce/core).
CODE_UNAUTHORIZED = 401
CODE_NOT_FOUND = 404
CODE_TOO_MANY_REQUESTS = 429
CODE_INTERNAL = 500
CODE_JWT_VALIDATION_FAILED = 999
CODE_INVALID_INPUT = 1000
CODE_ORDER_ERROR = 1001
CODE_PARSING_FAILURE = 1030
CODE_INVALID_INPUT_COUNT = 1132

# `InvalidInputProblem` values used here.
MANDATORY = "mandatory"
INVALID_VALUE = "invalid_value"
INVALID_IDENTIFIER = "invalid_identifier"
INVALID_EMAIL = "invalid_email"
INVALID_ENUM = "invalid_enum"
INVALID_BOOLEAN = "invalid_boolean"
INVALID_INTEGER = "invalid_integer"
INVALID_NON_EMPTY = "invalid_non_empty"
INVALID_POSITIVE_INT = "invalid_positive_int64"
INVALID_NON_NEGATIVE_INT = "invalid_non_negative_int64"
INVALID_DISCOUNT_CODE = "invalid_discount_code"
DUPLICATE = "duplicate"
OUT_OF_STOCK = "out_of_stock"

MSG_UNAUTHORIZED = "Unauthorized"
MSG_JWT_INVALID = "JWT validation failed"
MSG_NOT_FOUND = "Not found"
MSG_RATE_LIMITED = "Rate limit exceeded"
MSG_INTERNAL = "Internal server error"
MSG_INVALID_INPUT = "Invalid input"
MSG_ORDER_ERROR = "Order error"
MSG_PARSING_FAILURE = "Parsing failure"
MSG_INPUT_COUNT = "Invalid input count: exactly one OrderCreate per request"
MSG_KEY_REUSED = "Idempotency-Key was already used with a different request body"
CODE_MESSAGES: dict[int, str] = {
    CODE_UNAUTHORIZED: MSG_UNAUTHORIZED,
    CODE_NOT_FOUND: MSG_NOT_FOUND,
    CODE_TOO_MANY_REQUESTS: MSG_RATE_LIMITED,
    CODE_INTERNAL: MSG_INTERNAL,
}

ADDRESS_REQUIRED: tuple[str, ...] = ("address1", "city", "country", "name", "province", "zip")
ADDRESS_OPTIONAL: tuple[str, ...] = ("address2", "company", "id", "phone", "plus_code")
ADDRESSES: tuple[str, ...] = ("billing_address", "shipping_address")
FIELD_TYPES: frozenset[str] = frozenset({"checkbox", "choice", "file", "number", "string", "text"})
#: Optional identifiers of an OrderCreate and their prefixes ("" or null counts as not given).
ID_FIELDS: dict[str, str] = {
    "billing_address_short_id": "ar",
    "customer_id": "cu",
    "gateway_id": "gw",
    "sales_channel_id": "sc",
    "shipping_address_short_id": "ar",
    "subscription_id": "ss",
}
STRING_FIELDS: tuple[str, ...] = ("currency", "customer_email", "discount_code", "mobile")
BOOLEAN_FIELDS: tuple[str, ...] = (
    "mobile_notifications",
    "send_fulfillment_notifications",
    "send_order_notifications",
)
CUSTOM_ITEM_SIZES: tuple[str, ...] = ("grams", "height", "length", "width")

SHOP_ID_RE = re.compile(r"^sh_[A-Za-z0-9]+$")
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
BEARER_RE = re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 8

RULES: tuple[str, ...] = (
    "shop_id query parameter: required (1000, field shop_id, mandatory), shaped sh_..."
    " (1000, invalid_identifier); an unknown shop is 404 code 404.",
    "Authorization: Bearer <JWT> (three base64url parts whose first two decode to JSON objects) equal"
    " to the shop's token; none is 401 code 401, a malformed or other token 401 code 999.",
    "POST body: a JSON array of exactly one OrderCreate; malformed JSON, a non-array or a non-object"
    " element is 400 code 1030 (parsing failure); an empty array or 2+ elements 400 code 1132.",
    "Validation errors: 400 {error: {code: 1000, message, meta: {fields: [{field, problem, min, max,"
    " message}]}}}, field paths like 0.billing_address.zip, one entry per problem.",
    "billing_address / shipping_address, when sent: address1, city, country (two letters), name,"
    " province, zip are mandatory non-empty strings.",
    "line_items: at least one; quantity an integer >= 1; variant_id (va_...) in the shop's catalog,"
    " unless custom_item_index.value indexes into custom_items; fields [{label, value, type}] with"
    " type in checkbox/choice/file/number/string/text.",
    "custom_items: title non-empty; price (optional, default 0) a non-negative integer in minor units.",
    "customer_email a valid email; currency an ISO 4217 code (default: the shop's), one of the"
    " shop's `currencies` when it lists them (1000 invalid_value);"
    " discount_code one of the shop's codes when it lists them (1000 invalid_discount_code);"
    " gateway_id gw_... (one of the shop's gateways when listed); tags an array of strings;"
    " customer_id cu_, sales_channel_id sc_, subscription_id ss_, *_short_id ar_.",
    "clone_from_id (or_...): copies that order of the shop, every other field ignored.",
    "Out of stock (catalog inventory minus quantities already ordered): 400 code 1001 with"
    " meta.errors [{code: out_of_stock, line_item_index, subject: variant id, min, max: available}].",
    "Idempotency-Key: the same key (per shop) with a byte-identical body answers the first successful"
    " result again, creating nothing; with another body 422 code 1000 (field Idempotency-Key,"
    " problem duplicate); failed requests are not remembered; a key is forgotten after the shop's"
    " idempotency_ttl_seconds (default 60): then the same request creates another order.",
    "POST /search/orders.json?shop_id=&limit (1..100, default 50)&offset: body an array of search"
    " options {op, name, text, number, parent_index, ...}; op eq on tags (exact tag), id, number,"
    " customer_email, currency; op and as a parent; answers {items: [Order], total}.",
    "Success: 200 with [Order]: id or_..., number from 1001 per shop, uuid, state cart, money as"
    " integer minor units (total_price = sum of line prices), created_at RFC 3339.",
    "GET /orders.json?shop_id=&ids=or_a,or_b (404 when one is unknown) | &uuid= | &tag= (sandbox only).",
    "Rate limit per shop (default 120 per 60000 ms): 429 {error: {code: 429, message, meta:"
    " {rate_info: {cap, count, rate}}}} with Retry-After (seconds).",
)


# --- account settings ----------------------------------------------------------------------------


class CatalogVariant(BaseModel):
    """A product variant of the shop. A bare integer in the config means `{"price": n}`."""

    model_config = ConfigDict(extra="forbid")

    price: int = Field(default=DEFAULT_VARIANT_PRICE, ge=0, description="Minor units, e.g. cents.")
    inventory: int | None = Field(default=None, ge=0, description="Units available; None: unmanaged.")
    title: str | None = None
    sku: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_price(cls, data: Any) -> Any:
        return {"price": data} if isinstance(data, int) and not isinstance(data, bool) else data


class LanaAccount(AccountConfig):
    """A shop, keyed by its shop id (`sh_...`)."""

    catalog: dict[str, CatalogVariant] | None = None
    discount_codes: list[str] | None = None
    gateways: list[str] | None = None
    currency: str = DEFAULT_CURRENCY
    currencies: list[str] | None = None
    idempotency_ttl_seconds: float = Field(default=IDEMPOTENCY_TTL_SECONDS, ge=0)

    @model_validator(mode="after")
    def _jwt_tokens(self) -> LanaAccount:
        for token in (self.token, *self.tokens):
            if not looks_like_jwt(token):
                raise ValueError("lana tokens must be JWTs: three base64url parts, header and payload JSON")
        return self

    @field_validator("catalog")
    @classmethod
    def _variant_ids(cls, value: dict[str, CatalogVariant] | None) -> dict[str, CatalogVariant] | None:
        for key in value or {}:
            if not _has_prefix(key, "va"):
                raise ValueError(f"catalog key {key!r} is not a variant id like va_EQzGqWoY")
        return value

    @field_validator("gateways")
    @classmethod
    def _gateway_ids(cls, value: list[str] | None) -> list[str] | None:
        for gateway in value or []:
            if not _has_prefix(gateway, "gw"):
                raise ValueError(f"gateway {gateway!r} is not a gateway id like gw_EQzGqWoY")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not CURRENCY_RE.match(value) or not is_currency(value):
            raise ValueError("currency must be an ISO 4217 code")
        return value

    @field_validator("currencies")
    @classmethod
    def _currency_list(cls, value: list[str] | None) -> list[str] | None:
        for code in value or []:
            if not CURRENCY_RE.match(code) or not is_currency(code):
                raise ValueError(f"currencies: {code!r} is not an ISO 4217 code")
        return value

    def sells_in(self, currency: str) -> bool:
        return self.currencies is None or currency in self.currencies


# --- helpers -------------------------------------------------------------------------------------


def is_currency(code: str) -> bool:
    """An ISO 4217 currency code."""
    try:
        Currency(code)
    except (ValueError, KeyError):
        return False
    return True


def _has_prefix(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and re.fullmatch(rf"{prefix}_[A-Za-z0-9]+", value) is not None


def _b64url_json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts; header and payload decode to JSON objects (the signature is not checked)."""
    if not JWT_RE.match(token):
        return False
    header, payload, _ = token.split(".")
    return isinstance(_b64url_json(header), dict) and isinstance(_b64url_json(payload), dict)


def lana_id(prefix: str, *parts: object) -> str:
    """A stable obfuscated identifier like Lana's (`or_EQzGqWoY`), derived from `parts`."""
    number = int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, rest = divmod(number, len(BASE62))
        chars.append(BASE62[rest])
    return f"{prefix}_{''.join(chars)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: Any) -> int | None:
    """An integer, or an integral float (10.0); None for anything else."""
    if _is_int(value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Problems:
    """Invalid-input problems, as Lana lists them in `meta.fields`."""

    fields: list[dict[str, Any]] = field(default_factory=list)

    def add(self, path: str, problem: str, message: str, *, low: int = 0, high: int = 0) -> None:
        self.fields.append({"field": path, "problem": problem, "min": low, "max": high, "message": message})

    def mandatory(self, path: str) -> None:
        self.add(path, MANDATORY, "is required")

    def __bool__(self) -> bool:
        return bool(self.fields)


# --- validation ----------------------------------------------------------------------------------


@dataclass
class Line:
    variant_id: str | None
    custom_index: int  # NO_INDEX for a catalog line
    quantity: int
    unit_price: int
    managed: bool
    fields: list[dict[str, Any]]
    subscription_plan_index: int


@dataclass
class CustomItem:
    title: str
    price: int
    physical: bool
    taxable: bool
    sizes: dict[str, int]
    tax_class: str


@dataclass
class Draft:
    """A validated OrderCreate: what the order is built from (and what a clone copies)."""

    body: dict[str, Any]
    currency: str
    lines: list[Line]
    custom_items: list[CustomItem] | None
    addresses: dict[str, dict[str, Any] | None]

    def variant_quantities(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for line in self.lines:
            if line.variant_id is not None and line.custom_index == NO_INDEX:
                totals[line.variant_id] = totals.get(line.variant_id, 0) + line.quantity
        return totals


def _string(p: Problems, path: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        p.add(path, INVALID_VALUE, "must be a string")
        return None
    return value


def _check_address(p: Problems, path: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        p.add(path, INVALID_VALUE, "must be an object")
        return None
    before = len(p.fields)
    for key in ADDRESS_REQUIRED:
        given = value.get(key)
        if given is None or given == "":
            p.mandatory(f"{path}.{key}")
        elif not isinstance(given, str):
            p.add(f"{path}.{key}", INVALID_VALUE, "must be a string")
        elif not given.strip():
            p.add(f"{path}.{key}", INVALID_NON_EMPTY, "must not be blank")
    country = value.get("country")
    if isinstance(country, str) and country and not COUNTRY_RE.match(country):
        p.add(f"{path}.country", INVALID_VALUE, "must be a two-letter country code", low=2, high=2)
    for key in ADDRESS_OPTIONAL:
        _string(p, f"{path}.{key}", value.get(key))
    if len(p.fields) > before:
        return None
    address = {key: value[key] for key in ADDRESS_REQUIRED}
    address["country"] = str(address["country"]).upper()
    for key in ADDRESS_OPTIONAL:
        if key != "id":
            address[key] = value.get(key) or ""
    return address


def _index(p: Problems, path: str, value: Any) -> int | None:
    """`{"value": n}` (custom_item_index, subscription_plan_index) as n."""
    if not isinstance(value, dict) or not _is_int(value.get("value")):
        p.add(path, INVALID_VALUE, 'must be an object like {"value": 0}')
        return None
    return int(value["value"])


def _custom_items(p: Problems, path: str, value: Any) -> list[CustomItem | None] | None:
    """The custom items by position; an invalid one is None (its problems are in `p`)."""
    if value is None:
        return None
    if not isinstance(value, list):
        p.add(path, INVALID_VALUE, "must be an array")
        return None
    items: list[CustomItem | None] = []
    for index, item in enumerate(value):
        where = f"{path}.{index}"
        if not isinstance(item, dict):
            p.add(where, INVALID_VALUE, "must be an object")
            items.append(None)
            continue
        before = len(p.fields)
        title = item.get("title")
        if title is None:
            p.mandatory(f"{where}.title")
        elif not isinstance(title, str):
            p.add(f"{where}.title", INVALID_VALUE, "must be a string")
        elif not title.strip():
            p.add(f"{where}.title", INVALID_NON_EMPTY, "must not be empty")
        price = 0
        if item.get("price") is not None:
            amount = _as_int(item["price"])
            if amount is None or amount < 0:
                p.add(
                    f"{where}.price",
                    INVALID_NON_NEGATIVE_INT,
                    "must be a non-negative integer amount in minor units (e.g. 350 for 3.50)",
                )
            else:
                price = amount
        flags: dict[str, bool] = {}
        for key in ("physical", "taxable"):
            flag = item.get(key)
            if flag is not None and not isinstance(flag, bool):
                p.add(f"{where}.{key}", INVALID_BOOLEAN, "must be a boolean")
            flags[key] = bool(flag)
        sizes: dict[str, int] = {}
        for key in CUSTOM_ITEM_SIZES:
            size = item.get(key)
            if size is None:
                sizes[key] = 0
            elif _as_int(size) is None or size < 0:
                p.add(f"{where}.{key}", INVALID_NON_NEGATIVE_INT, "must be a non-negative integer")
            else:
                sizes[key] = int(size)
        tax_class = _string(p, f"{where}.tax_class", item.get("tax_class")) or ""
        _string(p, f"{where}.inventory_location_id", item.get("inventory_location_id"))
        valid = len(p.fields) == before
        physical, taxable = flags["physical"], flags["taxable"]
        items.append(CustomItem(str(title), price, physical, taxable, sizes, tax_class) if valid else None)
    return items


def _line_fields(p: Problems, path: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add(path, INVALID_VALUE, "must be an array")
        return []
    out: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        where = f"{path}.{index}"
        if not isinstance(entry, dict):
            p.add(where, INVALID_VALUE, "must be an object")
            continue
        before = len(p.fields)
        for key in ("label", "value"):
            if not isinstance(entry.get(key), str):
                p.add(f"{where}.{key}", INVALID_VALUE, "must be a string")
        if entry.get("type") not in FIELD_TYPES:
            p.add(f"{where}.type", INVALID_ENUM, "must be one of " + ", ".join(sorted(FIELD_TYPES)))
        # Lana's types (`@lana-commerce/core`, OrderCreate line item fields) require both indexes:
        # a field belongs to the product's field set; no default stands in for a missing one.
        for key in ("choice_index", "field_index"):
            if entry.get(key) is None:
                p.add(f"{where}.{key}", MANDATORY, "is required")
            elif not _is_int(entry[key]):
                p.add(f"{where}.{key}", INVALID_INTEGER, "must be an integer")
        if len(p.fields) == before:
            out.append(
                {
                    "choice_index": entry["choice_index"],
                    "field_index": entry["field_index"],
                    "label": entry["label"],
                    "type": entry["type"],
                    "value": entry["value"],
                }
            )
    return out


def _line_items(
    p: Problems, path: str, value: Any, custom: list[CustomItem | None] | None, account: LanaAccount
) -> list[Line]:
    if value is None or value == []:
        p.add(path, MANDATORY, "at least one line item is required", low=1)
        return []
    if not isinstance(value, list):
        p.add(path, INVALID_VALUE, "must be an array")
        return []
    lines: list[Line] = []
    customs = custom or []
    for index, item in enumerate(value):
        where = f"{path}.{index}"
        if not isinstance(item, dict):
            p.add(where, INVALID_VALUE, "must be an object")
            continue
        before = len(p.fields)
        quantity = item.get("quantity")
        if quantity is None:
            p.mandatory(f"{where}.quantity")
        elif not _is_int(quantity) or quantity < 1:
            p.add(f"{where}.quantity", INVALID_POSITIVE_INT, "must be an integer of at least 1", low=1)

        custom_index = NO_INDEX
        if item.get("custom_item_index") is not None:
            found = _index(p, f"{where}.custom_item_index", item["custom_item_index"])
            if found is not None and not 0 <= found < len(customs):
                p.add(
                    f"{where}.custom_item_index.value",
                    INVALID_VALUE,
                    f"must index into custom_items ({len(customs)} given)",
                    high=max(0, len(customs) - 1),
                )
            elif found is not None:
                custom_index = found

        variant_id = item.get("variant_id") or None
        variant: CatalogVariant | None = None
        if variant_id is None:
            if item.get("custom_item_index") is None:
                p.add(
                    f"{where}.variant_id",
                    MANDATORY,
                    "is required unless custom_item_index points at a custom item",
                )
        elif not _has_prefix(variant_id, "va"):
            p.add(f"{where}.variant_id", INVALID_IDENTIFIER, "must be a variant id like va_EQzGqWoY")
        elif account.catalog is None:
            variant = CatalogVariant()
        else:
            variant = account.catalog.get(variant_id)
            if variant is None:
                p.add(f"{where}.variant_id", INVALID_IDENTIFIER, f"no variant {variant_id} in this shop")

        fields = _line_fields(p, f"{where}.fields", item.get("fields"))
        if item.get("fields") and not item.get("field_set_id"):
            p.add(f"{where}.field_set_id", MANDATORY, "is required with fields (the product's field set)")
        plan_index = NO_INDEX
        if item.get("subscription_plan_index") is not None:
            plan_index = _index(p, f"{where}.subscription_plan_index", item["subscription_plan_index"]) or 0
        for key in ("field_set_id",):
            _string(p, f"{where}.{key}", item.get(key))
        if len(p.fields) > before:
            continue
        if custom_index != NO_INDEX:
            custom_item = customs[custom_index]
            if custom_item is None:  # invalid itself, already reported
                continue
            price, managed = custom_item.price, False
        else:
            assert variant is not None
            price, managed = variant.price, variant.inventory is not None
        lines.append(
            Line(
                variant_id=variant_id,
                custom_index=custom_index,
                quantity=int(quantity),
                unit_price=price,
                managed=managed,
                fields=fields,
                subscription_plan_index=plan_index,
            )
        )
    return lines


def validate_order(body: dict[str, Any], account: LanaAccount, path: str = "0") -> tuple[Draft, Problems]:
    """The validated order (meaningful only when there are no problems) and every problem found."""
    p = Problems()
    for key in STRING_FIELDS:
        _string(p, f"{path}.{key}", body.get(key))
    for key, prefix in ID_FIELDS.items():
        value = body.get(key)
        if value is not None and value != "" and not _has_prefix(value, prefix):
            p.add(f"{path}.{key}", INVALID_IDENTIFIER, f"must be an identifier like {prefix}_EQzGqWoY")
    for key in BOOLEAN_FIELDS:
        if body.get(key) is not None and not isinstance(body[key], bool):
            p.add(f"{path}.{key}", INVALID_BOOLEAN, "must be a boolean")
    for key in ("tags", "shipping_rate_ids"):
        value = body.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(t, str) for t in value)):
            p.add(f"{path}.{key}", INVALID_VALUE, "must be an array of strings")

    currency = body.get("currency") or account.currency
    if isinstance(currency, str) and not (CURRENCY_RE.match(currency) and is_currency(currency)):
        p.add(f"{path}.currency", INVALID_VALUE, "must be an ISO 4217 currency code", low=3, high=3)
    elif isinstance(currency, str) and not account.sells_in(currency):
        p.add(f"{path}.currency", INVALID_VALUE, f"the shop does not sell in {currency}")
    email = body.get("customer_email")
    if isinstance(email, str) and email and not EMAIL_RE.match(email):
        p.add(f"{path}.customer_email", INVALID_EMAIL, "must be a valid email address")
    code = body.get("discount_code")
    known_codes = None if account.discount_codes is None else {c.casefold() for c in account.discount_codes}
    if isinstance(code, str) and code and known_codes is not None and code.casefold() not in known_codes:
        p.add(f"{path}.discount_code", INVALID_DISCOUNT_CODE, f"no discount code {code!r} in this shop")
    gateway = body.get("gateway_id")
    if _has_prefix(gateway, "gw") and account.gateways is not None and gateway not in account.gateways:
        p.add(f"{path}.gateway_id", INVALID_IDENTIFIER, f"no gateway {gateway} in this shop")

    addresses = {key: _check_address(p, f"{path}.{key}", body.get(key)) for key in ADDRESSES}
    custom = _custom_items(p, f"{path}.custom_items", body.get("custom_items"))
    lines = _line_items(p, f"{path}.line_items", body.get("line_items"), custom, account)
    valid_custom = None if custom is None else [item for item in custom if item is not None]
    return Draft(body, str(currency), lines, valid_custom, addresses), p


def out_of_stock(draft: Draft, account: LanaAccount, ordered: dict[str, int]) -> list[dict[str, Any]]:
    """Lana's `meta.errors` for variants asked for beyond their inventory (`ordered`: already taken)."""
    errors: list[dict[str, Any]] = []
    for variant_id, wanted in draft.variant_quantities().items():
        variant = (account.catalog or {}).get(variant_id)
        if variant is None or variant.inventory is None:
            continue
        available = max(0, variant.inventory - ordered.get(variant_id, 0))
        if wanted > available:
            first = next(i for i, line in enumerate(draft.lines) if line.variant_id == variant_id)
            errors.append(
                {
                    "code": OUT_OF_STOCK,
                    "line_item_index": first,
                    "subject": variant_id,
                    "min": 0,
                    "max": available,
                }
            )
    return errors


# --- building the order --------------------------------------------------------------------------


def build_order(number: int, shop_id: str, draft: Draft, now: datetime) -> dict[str, Any]:
    """The Order as Lana answers it (a subset of its fields), money in minor units."""
    body = draft.body
    created = _rfc3339(now)
    line_total = sum(line.unit_price * line.quantity for line in draft.lines)
    weight = sum(
        draft.custom_items[line.custom_index].sizes["grams"] * line.quantity
        for line in draft.lines
        if draft.custom_items is not None and line.custom_index != NO_INDEX
    )

    def link(key: str) -> dict[str, str] | None:
        value = body.get(key)
        return {"id": value} if isinstance(value, str) and value else None

    def address(key: str) -> dict[str, Any] | None:
        given = draft.addresses.get(key)
        return None if given is None else {"id": lana_id("ad", shop_id, number, key), **given}

    return {
        "id": lana_id("or", shop_id, number),
        "number": number,
        "draft_number": number,
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lana:{shop_id}:{number}")),
        "state": ORDER_STATE,
        "financial_status": FINANCIAL_STATUS,
        "fulfillment_status": FULFILLMENT_STATUS,
        "currency": draft.currency,
        "customer_email": body.get("customer_email") or None,
        "customer": link("customer_id"),
        "discount_code": body.get("discount_code") or None,
        "gateway": link("gateway_id"),
        "sales_channel": link("sales_channel_id"),
        "subscription": link("subscription_id"),
        "mobile": body.get("mobile") or "",
        "mobile_notifications": bool(body.get("mobile_notifications")),
        "send_order_notifications": bool(body.get("send_order_notifications")),
        "send_fulfillment_notifications": bool(body.get("send_fulfillment_notifications")),
        "billing_address": address("billing_address"),
        "shipping_address": address("shipping_address"),
        "line_items": [
            {
                "id": lana_id("li", shop_id, number, index),
                "variant": None if line.custom_index != NO_INDEX else {"id": line.variant_id},
                "custom_item_index": line.custom_index,
                "quantity": line.quantity,
                "fulfillable_quantity": line.quantity,
                "fulfillment_status": FULFILLMENT_STATUS,
                "subscription_plan_index": line.subscription_plan_index,
                "fields": line.fields,
                "detail": {
                    "price": line.unit_price,
                    "original_price": line.unit_price,
                    "discount": 0,
                    "tax_excl_price": line.unit_price,
                    "tax_incl_price": line.unit_price,
                    "managed": line.managed,
                },
            }
            for index, line in enumerate(draft.lines)
        ],
        "custom_items": None
        if draft.custom_items is None
        else [
            {
                "id": lana_id("ci", shop_id, number, index),
                "title": item.title,
                "price": item.price,
                "physical": item.physical,
                "taxable": item.taxable,
                **item.sizes,
                "tax_class": item.tax_class,
                "inventory_location": None,
            }
            for index, item in enumerate(draft.custom_items)
        ],
        "tags": list(body.get("tags") or []),
        "total_line_items_price": line_total,
        "subtotal_price": line_total,
        "total_discounts": 0,
        "shipping_price": 0,
        "total_tax": 0,
        "total_price": line_total,
        "total_weight": weight,
        "created_at": created,
        "updated_at": created,
        "paid_at": None,
        "closed_at": None,
        "canceled_at": None,
    }


# --- the sandbox ---------------------------------------------------------------------------------


def error_body(code: int, message: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if meta is not None:
        error["meta"] = meta
    return {"error": error}


class LanaSandbox(ProviderSandbox):
    name: ClassVar[str] = NAME
    account_model: ClassVar[type[AccountConfig]] = LanaAccount
    default_rate_limit: ClassVar[RateLimitConfig] = DEFAULT_RATE_LIMIT
    first_order_id: ClassVar[int] = FIRST_ORDER_NUMBER
    recorded_headers: ClassVar[tuple[str, ...]] = (
        "Content-Type",
        "Accept",
        "User-Agent",
        AUTH_HEADER,
        IDEMPOTENCY_HEADER,
        "Sales-Channel-Id",
        "Device-Id",
        "Locale",
    )
    secret_headers: ClassVar[frozenset[str]] = frozenset({AUTH_HEADER.lower()})
    rules: ClassVar[tuple[str, ...]] = RULES

    def __init__(self) -> None:
        # One create at a time per sandbox: idempotency lookup, stock check and recording are atomic.
        self._create_lock = threading.Lock()

    def error_response(self, status: int, message: str) -> Response:
        code = CODE_INVALID_INPUT if status == 400 else status
        return self.error(status, code, CODE_MESSAGES.get(status, message))

    def server_error_response(self) -> Response:
        return self.error(500, CODE_INTERNAL, MSG_INTERNAL)

    @staticmethod
    def error(status: int, code: int, message: str, meta: dict[str, Any] | None = None) -> Response:
        response = jsonify(error_body(code, message, meta))
        response.status_code = status
        return response

    def invalid(self, problems: Problems, status: int = 400) -> Response:
        return self.error(status, CODE_INVALID_INPUT, MSG_INVALID_INPUT, {"fields": problems.fields})

    def rate_limited_response(self, decision: RateDecision | None, retry_after: int | None) -> Response:
        meta = None
        if decision is not None:
            seconds = decision.window_ms / 1000
            meta = {
                "rate_info": {
                    "cap": decision.quota,
                    "count": decision.quota - decision.remaining,
                    "rate": round(decision.quota / seconds, 3),
                }
            }
        response = self.error(429, CODE_TOO_MANY_REQUESTS, MSG_RATE_LIMITED, meta)
        if retry_after is not None:
            response.headers.update(self.retry_after_headers(retry_after))
        return response

    # --- routes -----------------------------------------------------------------------------------

    def register(self, bp: Blueprint, rt: ProviderRuntime) -> None:
        def authorize(*, create: bool) -> tuple[str, LanaAccount] | Response:
            shop_id = request.args.get("shop_id")
            if not shop_id:
                p = Problems()
                p.mandatory("shop_id")
                return self.invalid(p)
            if not SHOP_ID_RE.match(shop_id):
                p = Problems()
                p.add("shop_id", INVALID_IDENTIFIER, "must be a shop id like sh_EQzGqWoY")
                return self.invalid(p)
            header = request.headers.get(AUTH_HEADER)
            if not header:
                return self.error(401, CODE_UNAUTHORIZED, MSG_UNAUTHORIZED)
            bearer = BEARER_RE.match(header.strip())
            token = bearer.group(1) if bearer else None
            if token is None or not looks_like_jwt(token):
                return self.error(401, CODE_JWT_VALIDATION_FAILED, MSG_JWT_INVALID)
            account = rt.account(shop_id)
            if account is None:
                return self.error(404, CODE_NOT_FOUND, MSG_NOT_FOUND)
            if not account.accepts(token):
                return self.error(401, CODE_JWT_VALIDATION_FAILED, MSG_JWT_INVALID)
            early = rt.gate(shop_id, create=create)
            if early is not None:
                return early
            assert isinstance(account, LanaAccount)
            return shop_id, account

        def find_by_key(shop_id: str, key: str, ttl: float) -> OrderRecord | None:
            """The newest order created with `key` while the key is still remembered."""
            now = time.monotonic()
            for record in reversed(rt.state.orders(shop_id)):
                if record.extra.get("idempotency_key") == key:
                    return record if now - record.extra["created_monotonic"] < ttl else None
            return None

        def ordered_quantities(shop_id: str) -> dict[str, int]:
            totals: dict[str, int] = {}
            for record in rt.state.orders(shop_id):
                for variant_id, quantity in record.extra.get("variant_quantities", {}).items():
                    totals[variant_id] = totals.get(variant_id, 0) + quantity
            return totals

        def parse_body(raw: bytes) -> dict[str, Any] | Response:
            try:
                body = json.loads(raw.decode("utf-8") or "null")
            except (UnicodeDecodeError, ValueError) as exc:
                return self.error(400, CODE_PARSING_FAILURE, MSG_PARSING_FAILURE, {"error": str(exc)})
            if not isinstance(body, list):
                return self.error(
                    400,
                    CODE_PARSING_FAILURE,
                    MSG_PARSING_FAILURE,
                    {"error": "the body must be a JSON array of OrderCreate objects"},
                )
            if len(body) != 1:
                return self.error(400, CODE_INVALID_INPUT_COUNT, MSG_INPUT_COUNT)
            if not isinstance(body[0], dict):
                return self.error(
                    400, CODE_PARSING_FAILURE, MSG_PARSING_FAILURE, {"error": "an OrderCreate is an object"}
                )
            return body[0]

        def draft_for(shop_id: str, body: dict[str, Any], account: LanaAccount) -> Draft | Response:
            clone_from = body.get("clone_from_id")
            if clone_from is None or clone_from == "":
                draft, problems = validate_order(body, account)
                return self.invalid(problems) if problems else draft
            source = None
            if _has_prefix(clone_from, "or"):
                source = next((r for r in rt.state.orders(shop_id) if r.order["id"] == clone_from), None)
            if source is None:
                p = Problems()
                p.add("0.clone_from_id", INVALID_IDENTIFIER, "must be the id of an order of this shop")
                return self.invalid(p)
            draft = source.extra["draft"]
            assert isinstance(draft, Draft)
            return draft

        @bp.post("/orders.json")
        def create_order() -> Response:
            auth = authorize(create=True)
            if isinstance(auth, Response):
                return auth
            shop_id, account = auth
            raw = request.get_data()
            digest = hashlib.sha256(raw).hexdigest()
            key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip() or None
            with self._create_lock:
                if key is not None:
                    first = find_by_key(shop_id, key, account.idempotency_ttl_seconds)
                    if first is not None:
                        if first.extra["body_sha256"] == digest:
                            rt.state.incr("idempotent_replays")
                            return jsonify(first.extra["response"])
                        p = Problems()
                        p.add(IDEMPOTENCY_HEADER, DUPLICATE, MSG_KEY_REUSED)
                        return self.error(422, CODE_INVALID_INPUT, MSG_KEY_REUSED, {"fields": p.fields})
                body = parse_body(raw)
                if isinstance(body, Response):
                    return body
                draft = draft_for(shop_id, body, account)
                if isinstance(draft, Response):
                    return draft
                errors = out_of_stock(draft, account, ordered_quantities(shop_id))
                if errors:
                    return self.error(400, CODE_ORDER_ERROR, MSG_ORDER_ERROR, {"errors": errors})
                now = datetime.now(UTC)
                record = rt.record_order(
                    shop_id,
                    lambda number: build_order(number, shop_id, draft, now),
                    extra=lambda number, order: {
                        "idempotency_key": key,
                        "created_monotonic": time.monotonic(),
                        "body_sha256": digest,
                        "response": [order],
                        "draft": draft,
                        "variant_quantities": draft.variant_quantities(),
                    },
                )
            return jsonify(record.extra["response"])

        @bp.get("/orders.json")
        def get_orders() -> Response:
            auth = authorize(create=False)
            if isinstance(auth, Response):
                return auth
            shop_id, _ = auth
            orders = [record.order for record in rt.state.orders(shop_id)]
            ids = [i for raw in request.args.getlist("ids") for i in raw.split(",") if i]
            if ids:
                bad = [i for i in ids if not _has_prefix(i, "or")]
                if bad:
                    p = Problems()
                    p.add("ids", INVALID_IDENTIFIER, f"not order ids: {', '.join(bad)}")
                    return self.invalid(p)
                by_id = {order["id"]: order for order in orders}
                if any(i not in by_id for i in ids):
                    return self.error(404, CODE_NOT_FOUND, MSG_NOT_FOUND)
                orders = [by_id[i] for i in ids]
            if "uuid" in request.args:
                orders = [o for o in orders if o["uuid"] == request.args["uuid"]]
            if "tag" in request.args:
                orders = [o for o in orders if request.args["tag"] in o["tags"]]
            return jsonify(orders)

        @bp.post("/search/orders.json")
        def search_orders() -> Response:
            auth = authorize(create=False)
            if isinstance(auth, Response):
                return auth
            shop_id, _ = auth
            p = Problems()
            paging: dict[str, int] = {}
            for name, default, high in (
                ("limit", SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX),
                ("offset", 0, None),
            ):
                raw = request.args.get(name)
                value = int(raw) if raw is not None and re.fullmatch(r"\d{1,9}", raw) else None
                value = default if raw is None else value
                if value is None or value < (1 if name == "limit" else 0) or (high and value > high):
                    p.add(name, INVALID_VALUE, f"must be an integer{f' up to {high}' if high else ''}")
                else:
                    paging[name] = value
            try:
                options = json.loads(request.get_data().decode("utf-8") or "[]")
            except (UnicodeDecodeError, ValueError) as exc:
                return self.error(400, CODE_PARSING_FAILURE, MSG_PARSING_FAILURE, {"error": str(exc)})
            if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
                return self.error(
                    400,
                    CODE_PARSING_FAILURE,
                    MSG_PARSING_FAILURE,
                    {"error": "the body is an array of options"},
                )
            leaves: list[tuple[str, Any]] = []
            for index, option in enumerate(options):
                op = option.get("op")
                parent = option.get("parent_index", -1)
                if (
                    not _is_int(parent)
                    or not -1 <= parent < index
                    or (parent >= 0 and options[parent].get("op") != "and")
                ):
                    p.add(
                        f"{index}.parent_index", INVALID_VALUE, "must index an earlier 'and' option, or be -1"
                    )
                if op == "and":
                    continue
                if op != "eq":
                    p.add(f"{index}.op", INVALID_VALUE, "the sandbox models the ops 'eq' and 'and'")
                    continue
                name = option.get("name")
                if name not in SEARCH_FIELDS:
                    p.add(f"{index}.name", INVALID_VALUE, f"one of {', '.join(SEARCH_FIELDS)}")
                    continue
                value = option.get("number") if name == "number" else option.get("text")
                if value is None:
                    p.mandatory(f"{index}.{'number' if name == 'number' else 'text'}")
                    continue
                leaves.append((name, value))
            if p:
                return self.invalid(p)

            def matches(order: dict[str, Any]) -> bool:
                for name, value in leaves:
                    if name == "tags":
                        if value not in (order.get("tags") or []):
                            return False
                    elif order.get(name) != value:
                        return False
                return True

            found = [record.order for record in rt.state.orders(shop_id) if matches(record.order)]
            window = found[paging["offset"] : paging["offset"] + paging["limit"]]
            return jsonify({"items": window, "total": len(found)})
