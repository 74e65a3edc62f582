"""Threekit: `POST /api/orders` with `Authorization: Bearer <token>` (a private access token).

The body is `name` (<= 255), `cart[{configurationId (uuid), count (>= 1), metadata}]` (the route's
catalog maps each SKU to a saved configuration), `platform{id, platform, storeName}`, `metadata`,
an optional `orgId`, `customerId` and `derivative`, and an explicit `status` from
`List | In Cart | New | In Progress | Complete`. The answer is the bare order with `id` and `shortId`.

Money: Threekit computes no price and no total (a cart is configurations and counts), so there is
nothing to `check_total` against; instead the order Threekit holds says what the buyer paid, in its
`metadata` (strings, exact decimals in the order's currency): `currency`, `total` (what the buyer
pays, when known), `subtotal` (lines after all discounts), `discount_total` (the lines' discounts
and the order discount), `shipping`, `tax`, `taxes_included`, `coupon`, and `test` for a source's
test order. These keys win over the source's own metadata keys of the same name. Each cart item's
`metadata` carries its line: `name` (variant included), `variant`, `sku`, `unit_price` (before
discounts; `line_price`, all units, for a price that does not divide into a unit price the currency
can state, 3 for 10.00), `discount` and `tax` (the line's, all units), and `properties` (the buyer's
line properties; one whose value is empty is left out).

Reference on the wire: `platform.id` = tracking id (and `metadata.orderbridge_tracking_id`).
Lookup: `GET /api/orders?platform=<JSON of the same platform object>` answers a list (or
`{orders: [...]}`); only an order whose `platform` is the object the create sent counts as found.

Why the whole object: Threekit documents the filter only as "retrieve orders by platform data"
(Threekit REST API reference, Orders: `GET /api/orders`, query `platform`, "stringified,
URL-encoded JSON"; seed 002 for the create's `platform{id, platform, storeName}`; the
`@threekit/rest-api` npm package and the legacy `threekit/treble-legacy` client pass the object
through unchanged and say nothing about how it is compared). Nothing says a partial object
matches, so the lookup sends exactly the object the create sent (`_platform`, one function for
both): it finds the order whether Threekit compares whole objects or keys, where `{"id": ...}`
alone would miss every order under whole-object matching and the order would be sent again.
Residual risk (unconfirmed, stated in the report): changing the destination's `platform` or
`store_name` setting while a delivery is still unconfirmed changes the object, and the lookup
for that delivery misses; change them only with no delivery in CHECKING.
Errors are classified by HTTP status; the message comes from the body's `message`/`error`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

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
from orderbridge.models.config import CatalogEntry, ProviderSettings
from orderbridge.models.order import CanonicalOrder, OrderLine
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderCredentials,
    ProviderRequest,
    ProviderResult,
    ResultKind,
    safe_json,
)

DEFAULT_STATUS = "New"
DEFAULT_PLATFORM = "orderbridge"
DEFAULT_NAME_TEMPLATE = "orderbridge {tracking_id}"
REFERENCE_KEY = "orderbridge_tracking_id"
SOURCE_ORDER_KEY = "source_order_id"

Status = Literal["List", "In Cart", "New", "In Progress", "Complete"]


# --- the request, with Threekit's own limits -------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TkPlatform(_Wire):
    id: Annotated[str, StringConstraints(min_length=1)]
    platform: Annotated[str, StringConstraints(min_length=1)]
    storeName: str | None = None


class TkCartItem(_Wire):
    configurationId: UUID
    count: Annotated[int, Field(ge=1)]
    metadata: dict[str, Any] | None = None


class TkOrderCreate(_Wire):
    name: Annotated[str, StringConstraints(max_length=255)]
    customerId: str | None = None
    orgId: str | None = None
    platform: TkPlatform
    metadata: dict[str, Any]
    cart: list[TkCartItem] = Field(min_length=1)
    derivative: dict[str, Any] | None = None
    status: Status


# --- the answers ---------------------------------------------------------------------------------


class TkOrder(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Annotated[str, StringConstraints(min_length=1)]
    shortId: str | None = None
    platform: Any = None


# --- the destination's settings and the route's catalog entries (checked at load time) ----------


class ThreekitSettings(ProviderSettings):
    """`settings` of a threekit destination."""

    org_id: str | None = None
    customer_id: str | int | None = None
    store_name: str | None = None
    platform: Annotated[str, StringConstraints(min_length=1)] = Field(
        default=DEFAULT_PLATFORM, description="`platform.platform` of every order."
    )
    status: Status = DEFAULT_STATUS
    derivative: dict[str, Any] | None = None
    name_template: Annotated[str, StringConstraints(min_length=1)] = Field(
        default=DEFAULT_NAME_TEMPLATE, description="May use {tracking_id}, {external_order_id}, {source}."
    )

    @model_validator(mode="after")
    def _template_fields(self) -> ThreekitSettings:
        try:
            self.name_template.format(tracking_id="t", external_order_id="e", source="s")
        except (AttributeError, KeyError, IndexError, ValueError):
            raise ValueError(
                "name_template may only use {tracking_id}, {external_order_id} and {source}"
            ) from None
        return self


class ThreekitCatalogEntry(CatalogEntry):
    """One SKU of a route's catalog for a threekit destination (`configuration_id` also read)."""

    configurationId: UUID = Field(validation_alias=AliasChoices("configurationId", "configuration_id"))


class ThreekitCredentials(ProviderCredentials):
    """The destination's secret: `{"token": "..."}` (a private access token, not a public one)."""

    token: SecretStr = Field(min_length=1)


class ThreekitProvider(Provider[ThreekitSettings, ThreekitCatalogEntry, ThreekitCredentials]):
    name: ClassVar[str] = "threekit"
    settings_model: ClassVar[type[ProviderSettings]] = ThreekitSettings
    catalog_entry_model: ClassVar[type[CatalogEntry]] = ThreekitCatalogEntry
    credentials_model: ClassVar[type[ProviderCredentials]] = ThreekitCredentials
    default_base_url: ClassVar[str] = "https://admin-fts.threekit.com"
    supports_lookup: ClassVar[bool] = True

    @property
    def _orders_url(self) -> str:
        return f"{self.base_url}/api/orders"

    def auth_headers(self, credentials: Mapping[str, Any]) -> dict[str, str]:
        token = self.credentials(credentials).token.get_secret_value()
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def build_create(self, delivery: Delivery) -> ProviderRequest:
        try:
            body = self._create_body(delivery)
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", _first_error(exc)) from exc
        return ProviderRequest(
            method="POST",
            url=self._orders_url,
            json=body.model_dump(mode="json", exclude_none=True),
            headers={"Content-Type": "application/json"},
        )

    def _create_body(self, delivery: Delivery) -> TkOrderCreate:
        order = delivery.order
        settings = self.settings
        cart: list[TkCartItem] = []
        for index, line in enumerate(order.lines):
            try:
                cart.append(self._cart_item(delivery, line))
            except ValidationError as exc:
                raise RequestRejectedError("PROVIDER_LIMIT", f"cart.{index}.{_first_error(exc)}") from exc
        metadata: dict[str, Any] = dict(order.metadata) | _money(order)
        if order.external_order_id:
            metadata[SOURCE_ORDER_KEY] = order.external_order_id
        metadata[REFERENCE_KEY] = delivery.reference
        return TkOrderCreate(
            name=self._name(delivery),
            customerId=_text(settings.customer_id),
            orgId=_text(settings.org_id),
            platform=self._platform(delivery),
            metadata=metadata,
            cart=cart,
            derivative=settings.derivative,
            status=settings.status,
        )

    def _platform(self, delivery: Delivery) -> TkPlatform:
        settings = self.settings
        try:
            return TkPlatform(
                id=delivery.reference,
                platform=settings.platform,
                storeName=_text(settings.store_name),
            )
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", f"platform.{_first_error(exc)}") from exc

    def _name(self, delivery: Delivery) -> str:
        """The order's name from `settings.name_template` (its fields checked by the settings model)."""
        return self.settings.name_template.format(
            tracking_id=delivery.reference,
            external_order_id=delivery.order.external_order_id or "",
            source=delivery.source,
        )

    def _cart_item(self, delivery: Delivery, line: OrderLine) -> TkCartItem:
        if line.sku is None:
            raise RequestRejectedError(
                "CUSTOM_LINE_UNSUPPORTED",
                f"threekit carts hold saved configurations; line {line.name!r} has no SKU",
            )
        entry = self.catalog_entry(delivery, line.sku)
        return TkCartItem(configurationId=entry.configurationId, count=line.quantity, metadata=_line(line))

    def parse_create(self, response: requests.Response) -> ProviderResult:
        kind = self.classify_status(response.status_code)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, kind)
        try:
            order = TkOrder.model_validate(response.json())
        except (ValueError, ValidationError):
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "2xx without an order id",
                unknown_result=True,
            )
        return self._result(response, kind, provider_order_id=order.id, provider_reference=order.shortId)

    def build_lookup(self, delivery: Delivery) -> ProviderRequest:
        # Exactly the platform object the create sent, serialized the same way (see the module
        # docstring: whole-object matching is the reading under which a partial object misses).
        platform = self._platform(delivery).model_dump(mode="json", exclude_none=True)
        params = {"platform": json.dumps(platform, separators=(",", ":"))}
        org_id = self.settings.org_id
        if org_id:
            params["orgId"] = str(org_id)
        return ProviderRequest(method="GET", url=self._orders_url, params=params)

    def parse_lookup(self, response: requests.Response) -> ProviderResult:
        kind = self.classify_status(response.status_code)
        if kind is not ResultKind.SUCCEEDED:
            return self._error(response, kind)
        body = safe_json(response)
        if isinstance(body, dict):
            body = body.get("orders")
        if not isinstance(body, list):
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "lookup answered without an order list",
                unknown_result=True,
            )
        asked = _platform_asked(response)
        if asked is None:  # cannot check the answer against what was asked: neither found nor not
            return self._result(
                response,
                ResultKind.RETRYABLE,
                "BAD_RESPONSE",
                "lookup answer without the platform object it was asked for",
                unknown_result=True,
            )
        unverifiable = 0
        for entry in body:
            try:
                order = TkOrder.model_validate(entry)
            except ValidationError:
                continue
            if not isinstance(order.platform, dict):
                unverifiable += 1
                continue
            if order.platform == asked:
                return self._result(
                    response,
                    ResultKind.SUCCEEDED,
                    provider_order_id=order.id,
                    provider_reference=order.shortId,
                )
        if unverifiable:
            # orders answered without their platform object: ours may be among them
            return self._result(
                response,
                ResultKind.REVIEW,
                "LOOKUP_UNVERIFIABLE",
                f"Threekit answered {unverifiable} order(s) without a platform object for "
                f"platform.id {asked.get('id')}; a person checks which one is this delivery's",
                unknown_result=True,
            )
        return self._result(response, ResultKind.NOT_FOUND)

    # --- helpers -------------------------------------------------------------------------------

    def _error(self, response: requests.Response, kind: ResultKind) -> ProviderResult:
        body = safe_json(response)
        message = None
        if isinstance(body, dict):
            message = body.get("message") or body.get("error")
            if isinstance(message, dict):
                message = message.get("message")
        elif isinstance(body, str):
            message = body
        return self._result(
            response,
            kind,
            f"THREEKIT_{response.status_code}",
            str(message or response.reason or "no message"),
        )


def _money(order: CanonicalOrder) -> dict[str, str]:
    """What the buyer paid, for the order's metadata (Threekit computes no total of its own)."""
    paid: dict[str, str] = {"currency": order.currency}
    due = order.amount_due()
    if due is not None:
        paid["total"] = str(due)
    if order.priced:
        discounts = sum((line.discount for line in order.lines), order.order_discount)
        paid["subtotal"] = str(order.subtotal())
        paid["discount_total"] = str(discounts)
    if order.shipping_total is not None:
        paid["shipping"] = str(order.shipping_total)
    paid["tax"] = str(order.tax())
    paid["taxes_included"] = "true" if order.taxes_included else "false"
    if order.coupon:
        paid["coupon"] = order.coupon
    if order.test:
        paid["test"] = "true"
    return paid


def _line(line: OrderLine) -> dict[str, Any]:
    """A cart item's metadata: the line's name, variant, SKU, money and properties."""
    meta: dict[str, Any] = {}
    for key, value in (("name", line.name), ("variant", line.variant_title), ("sku", line.sku)):
        if value:
            meta[key] = value
    priced = line.gross() is not None
    if line.unit_price is not None:
        meta["unit_price"] = str(line.unit_price)
    elif line.line_price is not None:  # 3 for 10.00: no unit price the currency can state
        meta["line_price"] = str(line.line_price)
    if priced or line.discount:
        meta["discount"] = str(line.discount)
    if priced or line.tax:
        meta["tax"] = str(line.tax)
    properties = {name: value for name, value in line.options.items() if value}
    if properties:
        meta["properties"] = properties
    return meta


def _platform_asked(response: requests.Response) -> dict[str, Any] | None:
    """The platform object the lookup asked for, read back from the request that was sent."""
    request = getattr(response, "request", None)
    url = getattr(request, "url", None)
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("platform")
    try:
        asked = json.loads(values[0]) if values else None
    except ValueError:
        return None
    return asked if isinstance(asked, dict) and asked.get("id") else None


def _text(value: Any) -> str | None:
    """An optional setting as the string the wire wants (an id configured as a number included)."""
    return None if value is None else str(value)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"
