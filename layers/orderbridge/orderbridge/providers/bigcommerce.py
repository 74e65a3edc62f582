"""BigCommerce v2 Orders API: `POST /stores/{store_hash}/v2/orders` with `X-Auth-Token`.

Reference on the wire: `external_order_id` (writable, filterable; `external_id` is read-only).
Lookup: `GET /v2/orders?external_order_id=...` answers 204 with no body when nothing matches.
Errors are a JSON array `[{status, message}]`; 429 carries `X-Retry-After` (seconds).
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import requests
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from orderbridge.exceptions import CredentialsError, RequestRejectedError
from orderbridge.models.order import Address, OrderLine
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderRequest,
    ProviderResult,
    RateLimitInfo,
    ResultKind,
    safe_json,
)

DEFAULT_STATUS_ID = 11  # Awaiting Fulfillment: the order is paid for elsewhere


# --- the request, with BigCommerce's own limits ---------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BcAddress(_Wire):
    first_name: str
    last_name: str
    company: str | None = None
    street_1: str
    street_2: str | None = None
    city: str
    state: str | None = None
    zip: Annotated[str, StringConstraints(min_length=2)]
    country_iso2: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    phone: str | None = None
    email: str | None = None


class BcCatalogProduct(_Wire):
    product_id: int
    variant_id: int | None = None
    quantity: Annotated[int, Field(ge=1)]
    product_options: list[dict[str, Any]] | None = None
    price_inc_tax: float | None = None
    price_ex_tax: float | None = None


class BcCustomProduct(_Wire):
    name: Annotated[str, StringConstraints(min_length=1, max_length=250)]
    quantity: Annotated[int, Field(ge=1)]
    price_inc_tax: float
    price_ex_tax: float
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
    staff_notes: Annotated[str, StringConstraints(max_length=65535)] | None = None
    payment_method: str | None = None
    ip_address: Annotated[str, StringConstraints(max_length=30)] | None = None
    ip_address_v6: Annotated[str, StringConstraints(max_length=39)] | None = None
    shipping_cost_ex_tax: str | None = None
    shipping_cost_inc_tax: str | None = None
    default_currency_code: str | None = None


# --- the answers ---------------------------------------------------------------------------------


class BcOrder(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int


class BcError(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: int | None = None
    message: str = ""


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def _address(address: Address, email: str | None) -> BcAddress:
    return BcAddress(
        first_name=address.first_name,
        last_name=address.last_name,
        company=address.company,
        street_1=address.address1,
        street_2=address.address2,
        city=address.city,
        state=address.province,
        zip=address.zip,
        country_iso2=address.country,
        phone=address.phone,
        email=email,
    )


class BigCommerceProvider(Provider):
    name: ClassVar[str] = "bigcommerce"
    default_base_url: ClassVar[str] = "https://api.bigcommerce.com"
    supports_lookup: ClassVar[bool] = True
    retry_after_header: ClassVar[str] = "X-Retry-After"

    def rate_limit(self, headers: Any) -> RateLimitInfo | None:
        return read_rate_limit(headers)

    @property
    def _orders_url(self) -> str:
        store_hash = self.destination.settings.get("store_hash")
        if not store_hash:
            raise RequestRejectedError(
                "DESTINATION_MISCONFIGURED", "bigcommerce destination needs settings.store_hash"
            )
        return f"{self.base_url}/stores/{store_hash}/v2/orders"

    def auth_headers(self, credentials: dict[str, Any]) -> dict[str, str]:
        token = credentials.get("access_token") or credentials.get("token")
        if not token:
            raise CredentialsError("bigcommerce secret needs an access_token field")
        return {"X-Auth-Token": str(token), "Accept": "application/json"}

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

    def _create_body(self, delivery: Delivery) -> BcOrderCreate:
        order = delivery.order
        billing = order.billing_address or order.shipping_address
        if billing is None:
            raise RequestRejectedError(
                "MISSING_BILLING_ADDRESS",
                "BigCommerce needs a billing address (or a shipping address)",
            )
        products: list[BcCatalogProduct | BcCustomProduct] = []
        for index, line in enumerate(order.lines):
            try:
                products.append(self._product(delivery, line))
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
        notes = [f"orderbridge {delivery.tracking_id} from {delivery.source}"]
        if order.external_order_id:
            notes.append(f"source order {order.external_order_id}")
        if order.coupon:
            notes.append(f"coupon {order.coupon}")
        shipping = f"{order.shipping_total:.2f}" if order.shipping_total is not None else None
        settings = self.destination.settings
        return BcOrderCreate(
            status_id=int(settings.get("status_id", DEFAULT_STATUS_ID)),
            billing_address=_address(billing, order.buyer.email),
            shipping_addresses=[_address(order.shipping_address, order.buyer.email)]
            if order.shipping_address
            else None,
            products=products,
            external_order_id=delivery.reference,
            external_source=settings.get("external_source"),
            customer_message=order.notes,
            staff_notes="; ".join(notes),
            payment_method=order.payment_method or settings.get("payment_method", "Manual"),
            ip_address=ip4,
            ip_address_v6=ip6,
            shipping_cost_ex_tax=shipping,
            shipping_cost_inc_tax=shipping,
            default_currency_code=order.currency if settings.get("multi_currency") else None,
        )

    def _product(self, delivery: Delivery, line: OrderLine) -> BcCatalogProduct | BcCustomProduct:
        price = _money(line.unit_price) if line.unit_price is not None else None
        if line.sku is not None:
            ref = delivery.catalog.get(line.sku)
            if ref is None:
                raise RequestRejectedError(
                    "UNKNOWN_SKU",
                    f"SKU {line.sku!r} is not in the route's catalog for {delivery.destination_id}",
                )
            return BcCatalogProduct(
                product_id=int(ref["product_id"]),
                variant_id=int(ref["variant_id"]) if ref.get("variant_id") is not None else None,
                quantity=line.quantity,
                product_options=ref.get("product_options"),
                price_inc_tax=price,
                price_ex_tax=price,
            )
        if price is None:
            raise RequestRejectedError(
                "CUSTOM_PRODUCT_NEEDS_PRICE", f"custom product {line.name!r} needs a unit_price"
            )
        return BcCustomProduct(
            name=line.name or "", quantity=line.quantity, price_inc_tax=price, price_ex_tax=price
        )

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
        if response.status_code == 204:
            return self._result(response, ResultKind.NOT_FOUND)
        kind = self.classify_status(response.status_code)
        if kind is ResultKind.SUCCEEDED:
            found = safe_json(response)
            if isinstance(found, list) and found:
                order = BcOrder.model_validate(found[0])
                return self._result(response, kind, provider_order_id=str(order.id))
            return self._result(response, ResultKind.NOT_FOUND)
        return self._error(response, kind)

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
