"""Threekit orders API sandbox, mounted at `/threekit`.

Routes (relative to the mount, as on `https://admin-fts.threekit.com`):

* `POST /api/orders` - create an order; 200 with the bare order (`id` uuid, `shortId`).
* `GET  /api/orders` - the token's organization's orders, newest first, as
  `{"orders": [...], "count", "page", "perPage", "sort"}`; filters `platform` (URL-encoded JSON
  object: an order matches when its `platform` IS that object - the same keys with the same
  values; see `platform_matches`),
  `shortId`, `originOrgId`, `orgId`; paging `page` (from 1) and `perPage` (1..100, default 100).
* `GET  /api/orders/{id or shortId}` - one order of the organization, or 404.

Every request is authenticated by a token: `Authorization: Bearer <private token>`, or the
`bearer_token=<public token>` query parameter (the header wins when both are sent). The token
identifies the organization (the account); an unknown, missing or malformed credential is
401 `{"message": "Unauthorized"}`. An `orgId` in the body (or the `orgId` query parameter) that
is not the token's organization is 403. The `bearer_token` value is replaced by `<redacted>` in
the query string before anything logs the request (`GET /_sandbox/threekit/requests`).

Sources: the "Creates Order" page (seed 002); Threekit's "Orders" REST page on
community.threekit.com (GET /api/orders: query parameters `bearer_token`, `orgId`, `shortId`,
`originOrgId`, `platform` as stringified, encoded JSON; the fields of each order); Threekit's
"Tokens" page (public tokens as `bearer_token`, private tokens in a Bearer header); Threekit's
own client, treble (`http/orders.ts`, `http/request.ts`: the create answer is the bare order with
`id`, `shortId`, `originOrgId`, `customerId`, `derivative`, `createdAt`, `updatedAt`; lists are
`{orders, count, page, perPage, sort}`); the project brief (status enum, `count >= 1`, uuid
configuration ids, lookup by platform).

Choices where the sources are silent (listed in `RULES` too): success is HTTP 200 (the seed's
response section is empty; the adapter accepts any 2xx); errors are `{"message": ...}`, and a
validation error adds `details: [{path, message}]` (one entry per problem, Joi-style messages such
as `"cart[0].count" must be greater than or equal to 1`); objects are strict (a field the seed
does not list is refused, in the body, in `platform` and in cart entries); `POST` needs
`Content-Type: application/json` (else 415); the deprecated `items` is converted only when it is
an array of cart-shaped objects (otherwise it is kept untouched and `cart` is reported missing);
when both are sent `cart` wins and `items` is kept as sent; `count` must be a JSON integer (an
integral float such as 2.0 counts, a string does not); 429 carries `Retry-After` (seconds) and
no quota headers are sent; `shortId` is 7 characters of [A-Za-z0-9], unique per organization.

Account settings (`config/sandboxes.json`, under `threekit.accounts.<orgId>`): `token` (the
private token; `tokens` for more), `public_tokens` (tokens accepted as `bearer_token` or in the
header), `configurations` (the saved configuration uuids of the org; a cart's `configurationId`
must be one of them; leave it out to accept any well-formed uuid), `rate_limit` (default 100
requests per 60 s). Tokens must be unique across organizations (the first match wins).

Not modelled: public tokens' allowed domains (no Origin/Referer check), token permissions (a
public token may create `New`/`Complete` orders and read the org's orders), order updates
(`PUT /api/orders/{id}`, `.../items`), deletes, resellers (`originOrgId` is echoed, default the
org), configuration contents (only existence is checked), attribute validation of `metadata` and
`derivative` (any JSON object is accepted), Threekit's real rate limits (not published).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote_plus, unquote_plus

from flask import Blueprint, Response, g, jsonify, request
from pydantic import Field, field_validator

from orderbridge_sandboxes.config import AccountConfig, RateLimitConfig, mask
from orderbridge_sandboxes.provider import REDACTED, ProviderRuntime, ProviderSandbox
from orderbridge_sandboxes.ratelimit import RateDecision

NAME = "threekit"
DEFAULT_RATE_LIMIT = RateLimitConfig(quota=100, window_ms=60_000)

AUTH_HEADER = "Authorization"
TOKEN_PARAM = "bearer_token"
BEARER_RE = re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

STATUSES: tuple[str, ...] = ("List", "In Cart", "New", "In Progress", "Complete")
DEFAULT_STATUS = "New"
NAME_MAX_LENGTH = 255
SHORT_ID_LENGTH = 7
SHORT_ID_ALPHABET = string.ascii_letters + string.digits
PER_PAGE_DEFAULT = 100
PER_PAGE_MAX = 100
LIST_SORT = "-createdAt"

#: The body fields of seed 002; anything else is refused.
ORDER_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "customerId",
        "originOrgId",
        "orgId",
        "platform",
        "metadata",
        "items",
        "cart",
        "derivative",
        "status",
    }
)
OPTIONAL_STRINGS: tuple[str, ...] = ("customerId", "originOrgId", "orgId")
OPTIONAL_OBJECTS: tuple[str, ...] = ("metadata", "derivative")
PLATFORM_FIELDS: frozenset[str] = frozenset({"id", "platform", "storeName"})
CART_ITEM_FIELDS: frozenset[str] = frozenset({"configurationId", "count", "metadata"})

MSG_UNAUTHORIZED = "Unauthorized"
MSG_FORBIDDEN = "The token does not give access to organization {org}."
MSG_NOT_FOUND = "Not found"
MSG_UNSUPPORTED_MEDIA = "The request body must be JSON, sent with 'Content-Type: application/json'."
MSG_NOT_JSON = "The request body is not valid JSON."
MSG_RATE_LIMITED = "Too many requests, please try again later."
MSG_INVALID = "Validation failed: {summary}"

RULES: tuple[str, ...] = (
    "Auth: Authorization: Bearer <private token> or ?bearer_token=<public token> (the header wins);"
    " the token picks the organization; missing, malformed or unknown: 401 {message: Unauthorized}.",
    "orgId in the body or the query, when given, must be the token's organization, else 403.",
    "POST needs Content-Type: application/json (else 415) and a JSON object body (else 400).",
    "Validation errors: 400 {message, details: [{path, message}]}, one entry per problem; fields"
    " other than name, customerId, originOrgId, orgId, platform, metadata, items, cart, derivative,"
    " status are refused.",
    "cart: required, a non-empty array of {configurationId, count, metadata?}; configurationId a"
    " uuid among the org's configurations (any uuid when none are configured); count an integer"
    " >= 1; metadata an object.",
    "items (deprecated): an array of cart-shaped objects is converted into cart (when cart is"
    " absent) and kept as sent; any other items is left untouched and cart is reported missing.",
    "name: a string of at most 255 characters. status: one of List, In Cart, New, In Progress,"
    " Complete (default New). platform: an object of strings id, platform, storeName."
    " metadata, derivative: objects. customerId, originOrgId: strings.",
    "Success: 200 with the bare order: id (uuid), shortId (7 chars), orgId, originOrgId (default"
    " the org), customerId, name, platform, metadata, items, cart, derivative, status, createdAt,"
    " updatedAt.",
    "GET /api/orders?platform=<url-encoded JSON object> finds the orders whose platform is that"
    " object (whole-object match: the same keys, the same values; a partial object matches nothing);"
    " also shortId, originOrgId, orgId, page, perPage (max 100);"
    " answers {orders, count, page, perPage, sort}, newest first; nothing matching is an empty list.",
    "GET /api/orders/{id or shortId}: one order of the token's organization, else 404 {message}.",
    "Rate limit per organization (default 100 per 60000 ms): 429 {message} with Retry-After (seconds).",
)


# --- account settings ----------------------------------------------------------------------------


class ThreekitAccount(AccountConfig):
    """An organization, keyed by its orgId."""

    public_tokens: list[str] = Field(default_factory=list, description="Public access tokens.")
    configurations: list[str] | None = Field(
        default=None, description="Saved configuration uuids; None accepts any uuid."
    )

    @field_validator("configurations")
    @classmethod
    def _uuids(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        bad = [v for v in value if not UUID_RE.match(v)]
        if bad:
            raise ValueError(f"configurations must be uuids, not {bad}")
        return [v.lower() for v in value]

    def accepts_any(self, credential: str | None) -> bool:
        """Whether `credential` is one of the org's private or public tokens (constant time)."""
        if self.accepts(credential):
            return True
        if not credential:
            return False
        given = credential.encode()
        return any(hmac.compare_digest(given, t.encode()) for t in self.public_tokens)

    def has_configuration(self, configuration_id: str) -> bool:
        return self.configurations is None or configuration_id.lower() in self.configurations

    def masked(self) -> dict[str, Any]:
        data = super().masked()
        data["public_tokens"] = [mask(t) for t in self.public_tokens]
        return data


# --- validation ----------------------------------------------------------------------------------


@dataclass
class Problems:
    details: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: str, problem: str) -> None:
        self.details.append({"path": path, "message": f'"{path}" {problem}'})

    @property
    def summary(self) -> str:
        return "; ".join(d["message"] for d in self.details)

    def __bool__(self) -> bool:
        return bool(self.details)


@dataclass
class Draft:
    """A valid order request, normalized."""

    cart: list[dict[str, Any]]
    status: str
    name: str | None = None
    customer_id: str | None = None
    origin_org_id: str | None = None
    platform: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    derivative: dict[str, Any] | None = None
    items: Any = None


def _count(value: Any) -> int | None:
    """A JSON integer (2 or 2.0; never a bool or a string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _unknown_keys(p: Problems, path: str, value: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in value:
        if key not in allowed:
            p.add(f"{path}.{key}" if path else str(key), "is not allowed")


def _cart(p: Problems, path: str, value: Any, account: ThreekitAccount) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        p.add(path, "must be an array")
        return []
    if not value:
        p.add(path, "must contain at least 1 items")
        return []
    cart: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            p.add(where, "must be of type object")
            continue
        _unknown_keys(p, where, entry, CART_ITEM_FIELDS)
        configuration_id = entry.get("configurationId")
        if configuration_id is None:
            p.add(f"{where}.configurationId", "is required")
        elif not isinstance(configuration_id, str) or not UUID_RE.match(configuration_id):
            p.add(f"{where}.configurationId", "must be a valid GUID")
        elif not account.has_configuration(configuration_id):
            p.add(f"{where}.configurationId", "is not a configuration of this organization")
        count = _count(entry.get("count"))
        if "count" not in entry or entry["count"] is None:
            p.add(f"{where}.count", "is required")
        elif count is None:
            p.add(f"{where}.count", "must be an integer")
        elif count < 1:
            p.add(f"{where}.count", "must be greater than or equal to 1")
        metadata = entry.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            p.add(f"{where}.metadata", "must be of type object")
        cart.append({"configurationId": configuration_id, "count": count, "metadata": metadata})
    return cart


def _convertible_items(items: Any) -> bool:
    """The deprecated `items` in a shape that converts to a cart: an array of objects."""
    return isinstance(items, list) and bool(items) and all(isinstance(e, dict) for e in items)


def validate_order(body: Any, account: ThreekitAccount) -> tuple[Draft | None, Problems]:
    """The order request normalized, or the problems found (paths like `cart[0].count`)."""
    p = Problems()
    if not isinstance(body, dict):
        p.add("value", "must be of type object")
        return None, p
    _unknown_keys(p, "", body, ORDER_FIELDS)

    name = body.get("name")
    if name is not None and not isinstance(name, str):
        p.add("name", "must be a string")
    elif isinstance(name, str) and len(name) > NAME_MAX_LENGTH:
        p.add("name", f"length must be less than or equal to {NAME_MAX_LENGTH} characters long")

    for key in OPTIONAL_STRINGS:
        if body.get(key) is not None and not isinstance(body[key], str):
            p.add(key, "must be a string")
    for key in OPTIONAL_OBJECTS:
        if body.get(key) is not None and not isinstance(body[key], dict):
            p.add(key, "must be of type object")

    platform = body.get("platform")
    if platform is not None:
        if not isinstance(platform, dict):
            p.add("platform", "must be of type object")
        else:
            _unknown_keys(p, "platform", platform, PLATFORM_FIELDS)
            for key in sorted(PLATFORM_FIELDS & set(platform)):
                if not isinstance(platform[key], str):
                    p.add(f"platform.{key}", "must be a string")

    status = body.get("status", DEFAULT_STATUS)
    if status not in STATUSES:
        p.add("status", "must be one of [" + ", ".join(STATUSES) + "]")

    items = body.get("items")
    if body.get("cart") is not None:
        cart = _cart(p, "cart", body["cart"], account)
    elif _convertible_items(items):
        cart = _cart(p, "items", items, account)
    else:
        p.add("cart", "is required")
        cart = []

    if p:
        return None, p
    return (
        Draft(
            cart=cart,
            status=status,
            name=name,
            customer_id=body.get("customerId"),
            origin_org_id=body.get("originOrgId"),
            platform=platform,
            metadata=body.get("metadata"),
            derivative=body.get("derivative"),
            items=items,
        ),
        p,
    )


# --- orders --------------------------------------------------------------------------------------


def iso_millis(moment: datetime) -> str:
    """`2024-05-01T12:34:56.789Z`, as JavaScript's `toISOString` writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_short_id(taken: set[str]) -> str:
    while True:
        short_id = "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(SHORT_ID_LENGTH))
        if short_id not in taken:
            return short_id


def build_order(org_id: str, draft: Draft, short_id: str, now: datetime) -> dict[str, Any]:
    stamp = iso_millis(now)
    return {
        "id": str(uuid.uuid4()),
        "shortId": short_id,
        "orgId": org_id,
        "originOrgId": draft.origin_org_id or org_id,
        "customerId": draft.customer_id,
        "name": draft.name,
        "platform": draft.platform,
        "metadata": draft.metadata if draft.metadata is not None else {},
        "items": draft.items,
        "cart": draft.cart,
        "derivative": draft.derivative,
        "status": draft.status,
        "createdAt": stamp,
        "updatedAt": stamp,
    }


def platform_matches(order: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The order's platform is `wanted`: whole-object equality.

    Threekit documents the filter only as "retrieve orders by platform data" (the Orders REST page:
    `platform` as stringified, URL-encoded JSON); neither it nor `@threekit/rest-api` / treble's
    `http/orders.ts` says a partial object matches. The strictest reading is modelled, so that an
    adapter sending less than the create sent (e.g. `{"id": ...}` alone) misses here as it could
    on Threekit, instead of passing only because the sandbox chose partial matching.
    """
    platform = order.get("platform")
    if not isinstance(platform, dict):
        return False
    return platform == wanted


def take_query_token() -> None:
    """Move `bearer_token` out of the query string (into `g`) so no log ever shows it."""
    token: str | None = None
    parts = request.query_string.split(b"&") if request.query_string else []
    kept: list[bytes] = []
    redacted = f"{TOKEN_PARAM}={quote_plus(REDACTED)}".encode()
    for part in parts:
        key, _, value = part.partition(b"=")
        if unquote_plus(key.decode("latin-1")) == TOKEN_PARAM:
            if token is None:
                token = unquote_plus(value.decode("utf-8", "replace"))
            kept.append(redacted)
        else:
            kept.append(part)
    g.threekit_query_token = token
    if token is not None:
        stripped = b"&".join(kept)
        request.query_string = stripped
        request.environ["QUERY_STRING"] = stripped.decode("latin-1")


# --- the sandbox ---------------------------------------------------------------------------------


class ThreekitSandbox(ProviderSandbox):
    name: ClassVar[str] = NAME
    account_model: ClassVar[type[AccountConfig]] = ThreekitAccount
    default_rate_limit: ClassVar[RateLimitConfig] = DEFAULT_RATE_LIMIT
    first_order_id: ClassVar[int] = 1
    recorded_headers: ClassVar[tuple[str, ...]] = (
        "Content-Type",
        "Accept",
        "User-Agent",
        AUTH_HEADER,
        "Origin",
        "Referer",
    )
    secret_headers: ClassVar[frozenset[str]] = frozenset({AUTH_HEADER.lower()})
    rules: ClassVar[tuple[str, ...]] = RULES

    def error_response(self, status: int, message: str) -> Response:
        return self.error(status, message)

    @staticmethod
    def error(status: int, message: str, details: list[dict[str, str]] | None = None) -> Response:
        body: dict[str, Any] = {"message": message}
        if details is not None:
            body["details"] = details
        response = jsonify(body)
        response.status_code = status
        return response

    def invalid(self, problems: Problems) -> Response:
        return self.error(400, MSG_INVALID.format(summary=problems.summary), problems.details)

    def rate_limited_response(self, decision: RateDecision | None, retry_after: int | None) -> Response:
        response = self.error(429, MSG_RATE_LIMITED)
        if retry_after is not None:
            response.headers.update(self.retry_after_headers(retry_after))
        return response

    # --- routes -----------------------------------------------------------------------------------

    def register(self, bp: Blueprint, rt: ProviderRuntime) -> None:
        bp.before_request(take_query_token)

        def credential() -> str | None:
            header = request.headers.get(AUTH_HEADER)
            if header is not None:
                bearer = BEARER_RE.match(header.strip())
                return bearer.group(1) if bearer else None
            token = g.get("threekit_query_token")
            return token or None

        def org_of(token: str | None) -> str | None:
            if not token:
                return None
            accounts = rt.config.accounts  # one consistent snapshot (configure() swaps it whole)
            for org_id, account in accounts.items():
                if isinstance(account, ThreekitAccount) and account.accepts_any(token):
                    return org_id
            return None

        def authorize(*, create: bool) -> tuple[str, ThreekitAccount] | Response:
            org_id = org_of(credential())
            account = rt.account(org_id) if org_id is not None else None
            if org_id is None or account is None:
                return self.error(401, MSG_UNAUTHORIZED)
            early = rt.gate(org_id, create=create)
            if early is not None:
                return early
            assert isinstance(account, ThreekitAccount)
            return org_id, account

        def find(org_id: str, ref: str) -> dict[str, Any] | None:
            for record in rt.state.orders(org_id):
                if record.order["id"] == ref or record.order["shortId"] == ref:
                    return record.order
            return None

        @bp.post("/api/orders")
        def create_order() -> Response:
            auth = authorize(create=True)
            if isinstance(auth, Response):
                return auth
            org_id, account = auth
            if request.mimetype != "application/json":
                return self.error(415, MSG_UNSUPPORTED_MEDIA)
            try:
                body = json.loads(request.get_data(as_text=True) or "null")
            except ValueError:
                return self.error(400, MSG_NOT_JSON)
            if isinstance(body, dict) and isinstance(body.get("orgId"), str) and body["orgId"] != org_id:
                return self.error(403, MSG_FORBIDDEN.format(org=body["orgId"]))
            draft, problems = validate_order(body, account)
            if draft is None:
                return self.invalid(problems)
            now = datetime.now(UTC)

            def build(_: int) -> dict[str, Any]:
                taken = {r.order["shortId"] for r in rt.state.orders(org_id)}
                return build_order(org_id, draft, new_short_id(taken), now)

            record = rt.record_order(org_id, build)
            return jsonify(record.order)

        @bp.get("/api/orders")
        def list_orders() -> Response:
            auth = authorize(create=False)
            if isinstance(auth, Response):
                return auth
            org_id, _ = auth
            args = request.args
            if "orgId" in args and args["orgId"] != org_id:
                return self.error(403, MSG_FORBIDDEN.format(org=args["orgId"]))
            p = Problems()
            numbers: dict[str, int] = {}
            for key, default, high in (("page", 1, None), ("perPage", PER_PAGE_DEFAULT, PER_PAGE_MAX)):
                raw = args.get(key)
                try:
                    numbers[key] = default if raw is None else int(raw)
                except ValueError:
                    p.add(key, "must be a number")
                    continue
                if numbers[key] < 1 or (high is not None and numbers[key] > high):
                    limit = f"between 1 and {high}" if high else "at least 1"
                    p.add(key, f"must be {limit}")
            wanted: dict[str, Any] | None = None
            if "platform" in args:
                try:
                    wanted = json.loads(args["platform"])
                except ValueError:
                    wanted = None
                if not isinstance(wanted, dict):
                    p.add("platform", "must be a stringified, URL-encoded JSON object")
            if p:
                return self.invalid(p)
            found = [
                record.order
                for record in reversed(rt.state.orders(org_id))
                if (wanted is None or platform_matches(record.order, wanted))
                and ("shortId" not in args or record.order["shortId"] == args["shortId"])
                and ("originOrgId" not in args or record.order["originOrgId"] == args["originOrgId"])
            ]
            page, per_page = numbers["page"], numbers["perPage"]
            return jsonify(
                {
                    "orders": found[(page - 1) * per_page : page * per_page],
                    "count": len(found),
                    "page": page,
                    "perPage": per_page,
                    "sort": LIST_SORT,
                }
            )

        @bp.get("/api/orders/<ref>")
        def get_order(ref: str) -> Response:
            auth = authorize(create=False)
            if isinstance(auth, Response):
                return auth
            order = find(auth[0], ref)
            if order is None:
                return self.error(404, MSG_NOT_FOUND)
            return jsonify(order)
