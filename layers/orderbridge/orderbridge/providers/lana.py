"""Lana Commerce API: `POST /orders.json?shop_id=sh_...` with `Authorization: Bearer <jwt>`.

The body is an ARRAY of exactly one OrderCreate (the API follows the "multiple objects" convention
but creates one order per call). Addresses need `address1, city, country (2), name, province, zip`
when sent; catalog lines are `line_items[{variant_id, quantity, fields}]`; a line without a SKU
becomes a `custom_items` entry that its line item points at with `custom_item_index`.
The answer is an array of Order (`id`, and `number` for people). Errors carry numeric codes: 1000
invalid input (with `meta.fields`), 1001 order error, 429 rate limit; the envelope is read both as
`{"error": {code, message, meta}}` and as a bare `{code, message, meta}`.

Reference on the wire: the tag `orderbridge:<tracking id>`, and the `Idempotency-Key` header
(tracking id + a digest of the destination id), stable across retries. Lana answers a byte-identical
retry with the first result, so the "lookup" is the identical create request replayed: it either
returns the order an earlier attempt created or creates it now, never a second one. The body is
therefore deterministic (no timestamps, no random values).
"""

from __future__ import annotations

import hashlib
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from orderbridge.exceptions import CredentialsError, RequestRejectedError
from orderbridge.models.order import Address, OrderLine
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderRequest,
    ProviderResult,
    ResultKind,
    safe_json,
)

SHOP_ID_PATTERN = r"^sh_[A-Za-z0-9_-]+$"
REFERENCE_TAG = "orderbridge:{tracking_id}"
RATE_LIMITED = 429

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


class LnField(_Wire):
    label: NonEmpty
    value: str
    type: Literal["text"] = "text"


class LnIndex(_Wire):
    value: Annotated[int, Field(ge=0)]


class LnLineItem(_Wire):
    variant_id: NonEmpty | None = None
    custom_item_index: LnIndex | None = None
    quantity: Annotated[int, Field(ge=1)]
    fields: list[LnField] | None = None

    @model_validator(mode="after")
    def _variant_or_custom(self) -> LnLineItem:
        if (self.variant_id is None) == (self.custom_item_index is None):
            raise ValueError("a line item needs a variant_id or a custom_item_index")
        return self


class LnCustomItem(_Wire):
    title: NonEmpty
    price: Annotated[int, Field(ge=0)]  # minor units (cents), as Lana stores money
    physical: bool
    taxable: bool


class LnOrderCreate(_Wire):
    billing_address: LnAddress | None = None
    shipping_address: LnAddress | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    custom_items: list[LnCustomItem] | None = None
    customer_email: NonEmpty
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


# ISO 4217 currencies whose minor unit is not 1/100
_MINOR_UNIT_EXPONENT = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def _money(value: Any, currency: str = "USD") -> int:
    """Lana takes amounts as integers in the currency's minor unit: 3.50 USD -> 350."""
    exponent = _MINOR_UNIT_EXPONENT.get(currency, 2)
    return int((Decimal(str(value)) * (10**exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class LanaProvider(Provider):
    name: ClassVar[str] = "lana"
    default_base_url: ClassVar[str] = "https://api.lana.dev"
    supports_lookup: ClassVar[bool] = True

    @property
    def _shop_id(self) -> str:
        shop_id = self.destination.settings.get("shop_id")
        if not isinstance(shop_id, str) or not re.match(SHOP_ID_PATTERN, shop_id):
            raise RequestRejectedError(
                "DESTINATION_MISCONFIGURED",
                "lana destination needs settings.shop_id like 'sh_EQzGqWoY'",
            )
        return shop_id

    def auth_headers(self, credentials: dict[str, Any]) -> dict[str, str]:
        token = credentials.get("token") or credentials.get("jwt")
        if not token:
            raise CredentialsError("lana secret needs a token field (the JWT)")
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @staticmethod
    def idempotency_key(delivery: Delivery) -> str:
        """Stable for one delivery across retries; different for any other delivery."""
        digest = hashlib.sha256(delivery.destination_id.encode()).hexdigest()[:16]
        return f"{delivery.tracking_id}-{digest}"

    def build_create(self, delivery: Delivery) -> ProviderRequest:
        shop_id = self._shop_id
        try:
            body = self._create_body(delivery)
        except ValidationError as exc:
            raise RequestRejectedError("PROVIDER_LIMIT", _first_error(exc)) from exc
        return ProviderRequest(
            method="POST",
            url=f"{self.base_url}/orders.json",
            params={"shop_id": shop_id},
            json=[body.model_dump(mode="json", exclude_none=True)],
            headers={"Content-Type": "application/json", "Idempotency-Key": self.idempotency_key(delivery)},
        )

    def _create_body(self, delivery: Delivery) -> LnOrderCreate:
        order = delivery.order
        settings = self.destination.settings
        line_items: list[LnLineItem] = []
        custom_items: list[LnCustomItem] = []
        for index, line in enumerate(order.lines):
            try:
                line_items.append(self._line_item(delivery, line, custom_items))
            except ValidationError as exc:
                raise RequestRejectedError(
                    "PROVIDER_LIMIT", f"line_items.{index}.{_first_error(exc)}"
                ) from exc
        return LnOrderCreate(
            billing_address=_address(order.billing_address, "billing_address"),
            shipping_address=_address(order.shipping_address, "shipping_address"),
            currency=order.currency,
            custom_items=custom_items or None,
            customer_email=str(order.buyer.email),
            discount_code=order.coupon,
            gateway_id=str(settings["gateway_id"]) if settings.get("gateway_id") else None,
            line_items=line_items,
            tags=[REFERENCE_TAG.format(tracking_id=delivery.reference)],
        )

    def _line_item(self, delivery: Delivery, line: OrderLine, custom_items: list[LnCustomItem]) -> LnLineItem:
        fields = [LnField(label=label, value=value) for label, value in line.options.items()] or None
        if line.sku is None:
            if line.unit_price is None:
                raise RequestRejectedError(
                    "CUSTOM_PRODUCT_NEEDS_PRICE", f"custom product {line.name!r} needs a unit_price"
                )
            settings = self.destination.settings
            custom_items.append(
                LnCustomItem(
                    title=line.name or "",
                    price=_money(line.unit_price, delivery.order.currency),
                    physical=settings.get("custom_items_physical", True),
                    taxable=settings.get("custom_items_taxable", True),
                )
            )
            return LnLineItem(
                custom_item_index=LnIndex(value=len(custom_items) - 1), quantity=line.quantity, fields=fields
            )
        ref = delivery.catalog.get(line.sku)
        if ref is None:
            raise RequestRejectedError(
                "UNKNOWN_SKU",
                f"SKU {line.sku!r} is not in the route's catalog for {delivery.destination_id}",
            )
        variant_id = ref.get("variant_id", ref.get("variantId"))
        if variant_id is None:
            raise RequestRejectedError(
                "DESTINATION_MISCONFIGURED",
                f"catalog entry for SKU {line.sku!r} needs a variant_id for lana",
            )
        return LnLineItem(variant_id=str(variant_id), quantity=line.quantity, fields=fields)

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
        """The identical create request: Lana replays the first result for the same Idempotency-Key."""
        return self.build_create(delivery)

    def parse_lookup(self, response: requests.Response) -> ProviderResult:
        """A replay that answers an order is SUCCEEDED; errors are classified as for a create."""
        return self.parse_create(response)

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
        fields = _field_list((error.meta or {}).get("fields"))
        if fields:
            message = f"{message} (fields: {fields})"
        code = error.code if error.code is not None else response.status_code
        return self._result(response, kind, f"LANA_{code}", message)


def _address(address: Address | None, where: str) -> LnAddress | None:
    if address is None:
        return None
    if not address.province:
        raise RequestRejectedError(
            "PROVIDER_LIMIT", f"{where}.province: Lana requires a province (state/region) in an address"
        )
    try:
        return LnAddress(
            address1=address.address1,
            address2=address.address2,
            city=address.city,
            company=address.company,
            country=address.country,
            name=f"{address.first_name} {address.last_name}",
            phone=address.phone,
            province=address.province,
            zip=address.zip,
        )
    except ValidationError as exc:
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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"
