"""WooCommerce: `X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the raw body with the webhook's
secret), `X-WC-Webhook-Topic` (`order.created`), `X-WC-Webhook-Source` (the site's URL), the
REST API v3 order object as the body (WooCommerce source, `includes/class-wc-webhook.php`,
`WC_Webhook::deliver` and `generate_signature`).

The activation ping (`WC_Webhook::deliver_ping`): when a webhook is created through the REST API,
or saved or updated as active while a delivery is pending, WooCommerce POSTs the body
`webhook_id=<id>` with only its `WooCommerce/<version> Hookshot (WordPress/<version>)` user agent:
no `X-WC-Webhook-*` header, so no signature; nothing in it can be checked. It creates nothing, so
it is answered before any signature check, and with 200 exactly: `deliver_ping` treats any other
status (202 included) as "Delivery URL returned response code" and the webhook stays pending.

Money (REST API v3 Orders, "Order properties", "Line items", "Fee lines", "Shipping lines";
WooCommerce source `includes/abstracts/abstract-wc-order.php`, `calculate_totals`):

* `total` = line items' `total` + fee lines' `total` + `shipping_total` + `cart_tax` +
  `shipping_tax`; `total_tax` = `cart_tax` + `shipping_tax`, the line items' and fees' tax
  included in `cart_tax`. A line's, fee's and shipping's `total` are without tax whatever
  `prices_include_tax` says (`get_item_subtotal` adds `subtotal_tax` for the price with tax).
* A line's `subtotal` is before coupons, `total` after; coupon discounts (`coupon_lines`,
  `discount_total`/`discount_tax`) are already in the lines, so they are not taken off again.
* Fee lines (`name`, `total`, `total_tax`, `tax_status`) may be negative: a discount the shop
  added. A positive fee becomes a line of its own (a custom product by its name, quantity 1); a
  negative one is order discount.
* `prices_include_tax` false: the canonical order takes amounts without tax and the stated
  `total_tax` on top. True: prices as the buyer saw them, tax included (`subtotal + subtotal_tax`
  per line, `total + total_tax` per fee, shipping with its tax), `taxes_included` true.

The canonical total is always the order's `total`; an order these amounts cannot state exactly
(a negative fee larger than the lines: WooCommerce lets it eat into shipping) is recorded FAILED
(`VALIDATION_FAILED`, field codes `discount_too_large` or `total_mismatch`), never sent wrong; a
fee whose amounts cannot be read is `VALIDATION_FAILED` with field code `fee_unreadable`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from pydantic import Field

from orderbridge.exceptions import IntakeRejectedError
from orderbridge.models import money
from orderbridge.sources.base import Source, SourceSettings, Topic, header

logger = Logger(child=True)

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
DEFAULT_TOPICS = ["order.created"]
_PING = re.compile(rb"^webhook_id=[0-9]{1,20}$")
# WooCommerce Blocks' checkout keeps an unfinished checkout as an order in this status.
DRAFT_STATUSES = ("checkout-draft",)


class WooCommerceSettings(SourceSettings):
    scheme: Literal["woocommerce"]
    payload: Literal["woocommerce"] = "woocommerce"
    topics: list[Topic] = Field(
        default_factory=lambda: list(DEFAULT_TOPICS),
        description="The `X-WC-Webhook-Topic` values that mean a new order; others are answered 200 ignored.",
    )


def shop_of(site_url: str | None) -> str | None:
    """`https://Shop.Example.com/store/` -> `shop.example.com:store` (a shop name)."""
    if not site_url:
        return None
    parts = urlsplit(site_url.strip())
    host = (parts.hostname or "").lower()
    if not host:
        return None
    path = ":".join(p for p in parts.path.lower().split("/") if p)
    name = re.sub(r"[^a-z0-9_.:-]", "-", f"{host}:{path}" if path else host)
    return name[:64]


def _address(a: Any) -> dict[str, Any] | None:
    """WooCommerce's billing / shipping (REST v3 order: address_1, state, postcode, country)."""
    from orderbridge.intake.mapping import COMMON_ADDRESS_KEYS, platform_address

    keys = COMMON_ADDRESS_KEYS | {
        "address1": "address_1",
        "address2": "address_2",
        "province": "state",
        "zip": "postcode",
        "country": "country",
    }
    return platform_address(a, keys, any_of=("address_1", "city"))


def _places(currency: str | None) -> int:
    try:
        return money.minor_units(currency or "USD")
    except money.UnknownCurrencyError:
        return 2


def _line(item: Mapping[str, Any], places: int, inclusive: bool) -> dict[str, Any]:
    """A line item; with `inclusive` its price and discount carry the line's tax."""
    from orderbridge.intake.mapping import _amount, _clean, _str

    quantity = item.get("quantity")
    subtotal, total = _amount(item.get("subtotal")), _amount(item.get("total"))
    tax = _amount(item.get("total_tax"))
    if inclusive and subtotal is not None and total is not None:
        subtotal += _amount(item.get("subtotal_tax")) or Decimal(0)
        total += tax or Decimal(0)
    unit_price = line_price = None
    if subtotal is not None and isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0:
        each = subtotal / quantity
        if each == round(each, places):  # a price the currency can state
            unit_price = round(each, places)
        else:  # 3 for 10.00: the line's price as the buyer saw it, all units together
            line_price = subtotal
    discount = subtotal - total if subtotal is not None and total is not None and subtotal > total else None
    options = {
        str(_str(m.get("display_key")) or _str(m.get("key")))[:255]: str(
            _str(m.get("display_value")) or _str(m.get("value"))
        )
        for m in item.get("meta_data") or []
        if isinstance(m, dict)
        and not str(m.get("key") or "").startswith("_")
        and (_str(m.get("display_key")) or _str(m.get("key")))
        and (_str(m.get("display_value")) or _str(m.get("value")))
    }
    return _clean(
        {
            "sku": _str(item.get("sku")),
            "name": _str(item.get("name")),
            "quantity": quantity,
            "unit_price": unit_price,
            "line_price": line_price,
            "discount": discount,
            "tax": tax or None,
            "options": options,
        }
    )


def _fees(fee_lines: Sequence[Any], inclusive: bool) -> tuple[list[dict[str, Any]], Decimal]:
    """Fee lines as (lines, order discount): a positive fee is a line named as the fee (quantity
    1, its tax on it), a negative one is discount. Amounts with tax when `inclusive`.

    Raises IntakeRejectedError (VALIDATION_FAILED, `fee_unreadable`) for a fee whose `total` or
    `total_tax` is not a number: such an order cannot be stated exactly."""
    from orderbridge.intake.mapping import _amount, _str

    lines: list[dict[str, Any]] = []
    discount = Decimal(0)
    for i, fee in enumerate(fee_lines):
        if not isinstance(fee, dict):
            continue
        total = _amount(fee.get("total"))
        tax = _amount(fee.get("total_tax")) if fee.get("total_tax") not in (None, "") else Decimal(0)
        if total is None or tax is None:
            bad = "total" if total is None else "total_tax"
            raise IntakeRejectedError(
                422,
                "VALIDATION_FAILED",
                "a fee line's amount cannot be read",
                [
                    {
                        "field": f"fee_lines.{i}.{bad}",
                        "code": "fee_unreadable",
                        "message": f"{bad} is not a number: the order's total cannot be stated exactly",
                    }
                ],
            )
        amount = total + tax if inclusive else total
        if amount > 0:
            line = {"name": _str(fee.get("name")) or "Fee", "quantity": 1, "unit_price": amount}
            lines.append(line | ({"tax": tax} if tax else {}))
        elif amount < 0:
            discount -= amount
    return lines, discount


def from_woocommerce(payload: Any) -> dict[str, Any]:
    """A WooCommerce REST API v3 order object (the `order.created` webhook body), money exact
    (the rules: this module's docstring). Raises IntakeRejectedError for what cannot be read."""
    from orderbridge.intake.mapping import _amount, _clean, _str

    if not isinstance(payload, dict):
        raise IntakeRejectedError(400, "MALFORMED_BODY", "a WooCommerce order payload is a JSON object")
    currency = _str(payload.get("currency"))
    places = _places(currency)
    inclusive = payload.get("prices_include_tax") is True
    billing = payload.get("billing") if isinstance(payload.get("billing"), dict) else {}
    lines = [_line(i, places, inclusive) for i in payload.get("line_items") or [] if isinstance(i, dict)]
    fee_lines, fee_discount = _fees(payload.get("fee_lines") or [], inclusive)
    codes = [_str(c.get("code")) for c in payload.get("coupon_lines") or [] if isinstance(c, dict)]
    placed = _str(payload.get("date_created_gmt"))
    buyer = _clean(
        {
            "email": _str(billing.get("email")),
            "first_name": _str(billing.get("first_name")),
            "last_name": _str(billing.get("last_name")),
            "phone": _str(billing.get("phone")),
            "ip_address": _str(payload.get("customer_ip_address")),
            "user_agent": (_str(payload.get("customer_user_agent")) or "")[:512] or None,
        }
    )
    shipping_lines = [s for s in payload.get("shipping_lines") or [] if isinstance(s, dict)]
    shipping, shipping_tax = _amount(payload.get("shipping_total")), _amount(payload.get("shipping_tax"))
    if inclusive and shipping is not None:
        shipping += shipping_tax or Decimal(0)
    return _clean(
        {
            "external_order_id": _str(payload.get("id")),
            "currency": currency,
            "billing_address": _address(billing),
            "shipping_address": _address(payload.get("shipping")),
            "coupon": next((c for c in codes if c), None),
            "notes": _str(payload.get("customer_note")),
            "payment_method": _str(payload.get("payment_method_title"))
            or _str(payload.get("payment_method")),
            "shipping_total": shipping if shipping_lines else None,
            "shipping_tax": shipping_tax or None,
            "total_tax": _amount(payload.get("total_tax")),
            "total": _amount(payload.get("total")),
            "placed_at": f"{placed}+00:00" if placed and len(placed) == 19 else placed,
            "metadata": _clean({"woocommerce_number": _str(payload.get("number"))}),
        }
    ) | {
        "buyer": buyer,
        "lines": lines + fee_lines,
        "taxes_included": inclusive,
        "order_discount": fee_discount,
    }


def woocommerce_order(
    headers: Mapping[str, str], payload: Any, topics: Sequence[str]
) -> dict[str, Any] | None:
    topic = header(headers, "x-wc-webhook-topic")
    if topic not in topics:
        logger.info("webhook topic ignored", extra={"topic": topic})
        return None
    if isinstance(payload, dict) and payload.get("status") in DRAFT_STATUSES:
        logger.info("draft checkout ignored", extra={"topic": topic})
        return None
    return from_woocommerce(payload)


def skip_reason(payload: Any) -> tuple[str, str] | None:
    if isinstance(payload, dict) and payload.get("status") in ("cancelled", "failed", "trash"):
        return ("CANCELLED", f"the order's status is {payload['status']}")
    return None


class WooCommerceSource(Source):
    scheme = "woocommerce"
    settings_model = WooCommerceSettings

    def handshake(self, headers: Mapping[str, str], body: bytes) -> bool:
        """`webhook_id=<n>` and nothing else: `WC_Webhook::deliver_ping`, which is unsigned and
        sets no Content-Type of its own (so neither is looked at). Answered 200, creating nothing;
        any other unsigned body still meets the signature check."""
        return _PING.match(body.strip()) is not None

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        from orderbridge.intake import signatures

        return signatures.verify_hmac(
            body,
            headers,
            secrets,
            header=SIGNATURE_HEADER,
            algorithm="sha256",
            encoding="base64",
            event_id_header="X-WC-Webhook-Delivery-ID",
        )

    def order(self, headers: Mapping[str, str], payload: Any) -> dict[str, Any] | None:
        return woocommerce_order(headers, payload, self.settings.topics)

    def skip_reason(self, payload: Any) -> tuple[str, str] | None:
        return skip_reason(payload)

    # The shop (`Source.shop`, `orderbridge.identity.effective_shop`): the configured `shop`, else
    # the site in `X-WC-Webhook-Source`, else the source's name. The header is not signed: configure
    # `shop` so that a copy of a delivery with that header changed cannot name a second order.
