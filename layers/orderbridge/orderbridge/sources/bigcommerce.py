"""BigCommerce: `store/order/created` webhooks, authenticated by a header we choose.

BigCommerce does not sign webhook bodies. A webhook (`POST /stores/{store_hash}/v3/hooks`) takes
`headers`: static headers BigCommerce sends with every delivery. Set one (`auth_header`, default
`X-Orderbridge-Webhook-Token`) to the source's signing secret; the source compares it in constant
time against every secret of `secret_id` (two while rotating).

The body names the order only: `{"scope", "store_id", "data": {"type": "order", "id": N}, "hash",
"created_at", "producer": "stores/<store_hash>"}`. The source then fetches the order with the
store's API token (`api_secret_id`: `{"access_token": "..."}`, as a BigCommerce destination's
secret) from `api_base_url`: `GET /stores/{store_hash}/v2/orders/{id}`, `/products` and
`/shipping_addresses`. A fetch that fails is answered 503 (BigCommerce retries); the token never
reaches a log.

Money (v2 order, in `default_currency_code`, else `currency_code`). Sources: BigCommerce's Orders
v2 OpenAPI file (`contracts/bigcommerce/orders.v2.oas2.yml`, "OAS"), and its guide "Orders
overview" (`docs/store-operations/orders/index.mdx` in bigcommerce/docs, "Calculating totals"):

* The total is `total_inc_tax` (what the buyer pays) and the tax `total_tax`, both stated, so an
  order these fields do not add up to is recorded FAILED with the reason, never sent wrong.
* Handling and wrapping are part of the total ("Calculating totals": products, shipping, handling
  and wrapping costs make it). The canonical order has no field of their own: they join shipping
  (`shipping_total`, their tax `shipping_tax`), which keeps the total exact.
* `discount_amount` ("Amount of discount for this transaction") and `coupon_discount` (read-only:
  a coupon redeemed at checkout; the API cannot write it, "Is adding coupons available?") are
  separate amounts, both taken off: OAS `order_Resp` example (order 218) has 5.00 of each and
  `total_inc_tax` = `subtotal_inc_tax` + `shipping_cost_inc_tax` - 10.00.
* `is_tax_inclusive_pricing` (OAS `order_RespOnly`): "If true, ... the values of
  `subtotal_inc_tax`, `shipping_cost_inc_tax`, `handling_cost_inc_tax`, `wrapping_cost_inc_tax`
  and `total_inc_tax` are not estimated but actual values". So a tax-inclusive order maps the
  `*_inc_tax` side (`taxes_included`: its discounts are amounts with tax), any other the `*_ex_tax`
  side with `total_tax` on top. Each product's tax is `(price_inc_tax - price_ex_tax) x quantity`.

The shop is the store hash (`producer`), the order's id its id at the origin.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

import requests
from aws_lambda_powertools import Logger
from pydantic import Field, StringConstraints

from orderbridge.exceptions import (
    CredentialsError,
    IntakeRejectedError,
    IntakeUnavailableError,
    SignatureError,
)
from orderbridge.models import money
from orderbridge.sources.base import HeaderName, Source, SourceSettings, Topic, header

logger = Logger(child=True)

DEFAULT_SCOPES = ["store/order/created"]
DEFAULT_AUTH_HEADER = "X-Orderbridge-Webhook-Token"
PAGE_SIZE = 250
# v2 status ids: 0 Incomplete (an abandoned checkout), 5 Cancelled, 6 Declined.
NOT_LIVE_STATUSES = {0: "incomplete", 5: "cancelled", 6: "declined"}

StoreHash = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,32}$")]


class BigCommerceSettings(SourceSettings):
    scheme: Literal["bigcommerce"]
    store_hash: StoreHash = Field(description="The store's hash (`producer` is `stores/<store_hash>`).")
    api_secret_id: str = Field(
        description='Secrets Manager id of the store API token: {"access_token": "..."} '
        "(e.g. orderbridge/providers/<name>, shared with a BigCommerce destination of the same store)."
    )
    api_base_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] = Field(
        default="https://api.bigcommerce.com",
        description="Where `/stores/{store_hash}/v2/orders` is served (a sandbox locally).",
    )
    auth_header: HeaderName = Field(
        default=DEFAULT_AUTH_HEADER,
        description="The header set in the webhook's `headers`, carrying the signing secret.",
    )
    scopes: list[Topic] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        description="The webhook `scope` values that mean a new order; others are answered 200 ignored.",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=20, description="Per API request.")


_credential_store: Any = None


def credentials() -> Any:
    """The source's own cached CredentialStore (a source is given its settings only)."""
    global _credential_store
    if _credential_store is None:
        from orderbridge.credentials import CredentialStore

        _credential_store = CredentialStore()
    return _credential_store


def _places(currency: str | None) -> int:
    try:
        return money.minor_units(currency or "USD")
    except money.UnknownCurrencyError:
        return 2


def _exact(value: Any, places: int) -> Decimal | None:
    """BigCommerce's `"45.0000"` as `45.00` when the currency can state it exactly; else as given."""
    from orderbridge.intake.mapping import _amount

    amount = _amount(value)
    if amount is None:
        return None
    q = Decimal(1).scaleb(-places)
    return amount.quantize(q) if amount == amount.quantize(q) else amount


def _address(a: Any) -> dict[str, Any] | None:
    """BigCommerce's billing_address / shipping address (Orders v2: street_1, state, country_iso2)."""
    from orderbridge.intake.mapping import COMMON_ADDRESS_KEYS, platform_address

    keys = COMMON_ADDRESS_KEYS | {
        "address1": "street_1",
        "address2": "street_2",
        "province": "state",
        "zip": "zip",
        "country": ("country_iso2", "country"),
    }
    return platform_address(a, keys, any_of=("street_1", "city"))


def _line(p: Mapping[str, Any], places: int, inclusive: bool) -> dict[str, Any]:
    """A product: its unit price with tax when `inclusive`, without otherwise."""
    from orderbridge.intake.mapping import _clean, _str

    quantity = p.get("quantity")
    ex, inc = _exact(p.get("price_ex_tax"), places), _exact(p.get("price_inc_tax"), places)
    tax = None
    if ex is not None and inc is not None and isinstance(quantity, int) and not isinstance(quantity, bool):
        tax = (inc - ex) * quantity
    options = {
        str(_str(o.get("display_name")))[:255]: str(_str(o.get("display_value")))
        for o in p.get("product_options") or []
        if isinstance(o, dict) and _str(o.get("display_name")) and _str(o.get("display_value"))
    }
    return _clean(
        {
            "sku": _str(p.get("sku")),
            "name": _str(p.get("name")),
            "quantity": quantity,
            "unit_price": inc if inclusive else ex,
            "tax": tax or None,
            "options": options,
        }
    )


def _placed_at(value: Any) -> str | None:
    try:
        return parsedate_to_datetime(str(value)).isoformat() if value else None
    except (TypeError, ValueError):
        return None


def from_bigcommerce(
    order: Mapping[str, Any], products: Sequence[Any], shipping_addresses: Sequence[Any]
) -> dict[str, Any]:
    """A v2 order with its products and shipping addresses as a canonical order, money exact
    (the rules: this module's docstring)."""
    from orderbridge.intake.mapping import _clean, _str

    currency = _str(order.get("default_currency_code")) or _str(order.get("currency_code"))
    places = _places(currency)
    inclusive = order.get("is_tax_inclusive_pricing") is True
    zero = Decimal(0)

    def amount(key: str) -> Decimal:
        return _exact(order.get(key), places) or zero

    billing = order.get("billing_address") if isinstance(order.get("billing_address"), dict) else {}
    charges = ("shipping", "handling", "wrapping")
    shipping_ex = sum((amount(f"{k}_cost_ex_tax") for k in charges), zero)
    shipping_inc = sum((amount(f"{k}_cost_inc_tax") for k in charges), zero)
    ship_to = next((a for a in shipping_addresses if isinstance(a, dict)), None)
    shipping = shipping_inc if inclusive else shipping_ex
    buyer = _clean(
        {
            "email": _str(billing.get("email")),
            "first_name": _str(billing.get("first_name")),
            "last_name": _str(billing.get("last_name")),
            "phone": _str(billing.get("phone")),
            "ip_address": _str(order.get("ip_address")),
        }
    )
    return _clean(
        {
            "external_order_id": _str(order.get("id")),
            "currency": currency,
            "billing_address": _address(billing),
            "shipping_address": _address(ship_to),
            "notes": _str(order.get("customer_message")),
            "payment_method": _str(order.get("payment_method")),
            "shipping_total": shipping if ship_to is not None or shipping else None,
            "shipping_tax": (shipping_inc - shipping_ex) or None,
            "total_tax": _exact(order.get("total_tax"), places),
            "total": _exact(order.get("total_inc_tax"), places),
            "placed_at": _placed_at(order.get("date_created")),
            "metadata": _clean({"bigcommerce_status": _str(order.get("status"))}),
        }
    ) | {
        "buyer": buyer,
        "lines": [_line(p, places, inclusive) for p in products if isinstance(p, dict)],
        "taxes_included": inclusive,
        "order_discount": amount("discount_amount") + amount("coupon_discount"),
    }


class BigCommerceSource(Source):
    scheme = "bigcommerce"
    settings_model = BigCommerceSettings

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._fetched: dict[str, Any] | None = None

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        given = header(headers, self.settings.auth_header)
        if not given:
            raise SignatureError("SIGNATURE_MISSING", f"{self.settings.auth_header} is missing")
        matched = False
        for secret in secrets:  # every secret compared: the time does not tell which matched
            matched |= hmac.compare_digest(given.encode(), str(secret).encode())
        if not matched:
            raise SignatureError("SIGNATURE_INVALID", f"{self.settings.auth_header} matches no secret")
        return ""

    def event_id(self, payload: Any, event_id: str) -> str:
        value = payload.get("hash") if isinstance(payload, dict) else None
        return str(value)[:200] if value else event_id

    def order(self, headers: Mapping[str, str], payload: Any) -> dict[str, Any] | None:
        s = self.settings
        if not isinstance(payload, dict):
            raise IntakeRejectedError(400, "MALFORMED_BODY", "a BigCommerce webhook body is a JSON object")
        if payload.get("scope") not in s.scopes:
            logger.info("webhook scope ignored", extra={"scope": str(payload.get("scope"))[:100]})
            return None
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        order_id = data.get("id")
        if data.get("type") != "order" or not isinstance(order_id, int) or isinstance(order_id, bool):
            raise IntakeRejectedError(
                422,
                "VALIDATION_FAILED",
                "the webhook names no order",
                [{"field": "data.id", "code": "invalid", "message": "an order id (an integer) is required"}],
            )
        if payload.get("producer") != f"stores/{s.store_hash}":
            raise IntakeRejectedError(
                422,
                "VALIDATION_FAILED",
                "the webhook comes from another store",
                [
                    {
                        "field": "producer",
                        "code": "invalid",
                        "message": f"expected stores/{s.store_hash} (the source's store_hash)",
                    }
                ],
            )
        order, products, addresses = self._fetch(order_id)
        self._fetched = order
        return from_bigcommerce(order, products, addresses)

    def skip_reason(self, payload: Any) -> tuple[str, str] | None:
        order = self._fetched or {}
        if order.get("is_deleted"):
            return ("CANCELLED", "the order is deleted in BigCommerce")
        status = NOT_LIVE_STATUSES.get(order.get("status_id"))  # type: ignore[arg-type]
        return ("CANCELLED", f"the order's status is {status}") if status else None

    # --- the store's API ------------------------------------------------------------------------

    def _fetch(self, order_id: int) -> tuple[dict[str, Any], list[Any], list[Any]]:
        s = self.settings
        try:
            secret = credentials().get(s.api_secret_id)
        except CredentialsError as exc:
            logger.error("BigCommerce API token unavailable", extra={"secret_id": s.api_secret_id})
            raise IntakeUnavailableError(f"cannot read {s.api_secret_id!r}") from exc
        token = secret.get("access_token") or secret.get("token")
        if not token:
            logger.error("BigCommerce API secret has no access_token", extra={"secret_id": s.api_secret_id})
            raise IntakeUnavailableError(f"{s.api_secret_id!r} has no access_token")
        root = f"{s.api_base_url.rstrip('/')}/stores/{s.store_hash}/v2/orders/{order_id}"
        auth = {"X-Auth-Token": str(token), "Accept": "application/json"}
        order = self._get(root, auth, order_id)
        if not isinstance(order, dict):
            self._unavailable(order_id, "order", "not a JSON object")
        return (
            order,
            self._list(root + "/products", auth, order_id),
            self._list(root + "/shipping_addresses", auth, order_id),
        )

    def _list(self, url: str, auth: dict[str, str], order_id: int) -> list[Any]:
        entries: list[Any] = []
        page = 1
        while True:
            got = self._get(url, auth, order_id, params={"limit": PAGE_SIZE, "page": page})
            if got is None:  # 204: none (or no more)
                return entries
            if not isinstance(got, list):
                self._unavailable(order_id, url.rsplit("/", 1)[-1], "not a JSON array")
            entries += got
            if len(got) < PAGE_SIZE:
                return entries
            page += 1

    def _get(
        self, url: str, auth: dict[str, str], order_id: int, params: dict[str, Any] | None = None
    ) -> Any:
        part = url.rsplit("/", 1)[-1] if not url.endswith(str(order_id)) else "order"
        try:
            r = requests.get(url, headers=auth, params=params, timeout=self.settings.timeout_seconds)
        except requests.RequestException as exc:
            self._unavailable(order_id, part, type(exc).__name__)
        if r.status_code == 204:
            return None
        if r.status_code != 200:
            self._unavailable(order_id, part, f"HTTP {r.status_code}")
        try:
            return r.json()
        except ValueError:
            self._unavailable(order_id, part, "not JSON")

    def _unavailable(self, order_id: int, part: str, reason: str) -> Any:
        logger.warning(
            "BigCommerce order fetch failed; answered 503 so BigCommerce retries",
            extra={
                "store_hash": self.settings.store_hash,
                "order_id": order_id,
                "part": part,
                "reason": reason,
            },
        )
        raise IntakeUnavailableError(f"BigCommerce order {order_id} cannot be read ({part}: {reason})")
