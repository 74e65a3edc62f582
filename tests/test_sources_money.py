"""Storefront money, end to end through the local system: WooCommerce fee lines (positive and
negative) with prices with and without tax, WooCommerce's activation ping, and BigCommerce
storefront orders with each of coupon_discount, discount_amount, handling, wrapping and
tax-inclusive pricing. Every order is signed (or authenticated) as its platform does it, goes in
through the local API, and is checked twice: the canonical order's total against the platform's
stated total, and the total the BigCommerce sandbox computed for the order the pipeline created.

Platform rules and their sources: the docstrings of orderbridge.sources.woocommerce and
orderbridge.sources.bigcommerce."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from orderbridge.models.order import CanonicalOrder
from orderbridge.sources.bigcommerce import from_bigcommerce
from orderbridge.sources.woocommerce import from_woocommerce
from tests.test_sources import BC_STORE, WC_ORDER

WC_SOURCE = "/webhooks/woocommerce-demo"
WC_SECRET = "wc_local_demo_secret"  # config/local-secrets.json
BC_SOURCE = "/webhooks/bigcommerce-demo"
BC_HEADER = {"X-Orderbridge-Webhook-Token": "bc_local_demo_header_token"}
BC_TOKEN = {"X-Auth-Token": "local-bigcommerce-token", "Accept": "application/json"}


def _unique_id() -> int:
    return time.time_ns() % 10**9


# --- WooCommerce ---------------------------------------------------------------------------------


def _php_json(order: dict[str, Any]) -> bytes:
    """The body as WooCommerce sends it: `wp_json_encode` (PHP's json_encode: non-ASCII as \\uXXXX,
    `/` as `\\/`), the signature computed over exactly these bytes."""
    return json.dumps(order, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def _wc_signed(body: bytes, secret: str = WC_SECRET) -> dict[str, str]:
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/8.5.0 Hookshot (WordPress/6.4.3)",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-Signature": sig,
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": hashlib.sha1(body).hexdigest(),
    }


def wc_order_with_fees(*, prices_include_tax: bool) -> dict[str, Any]:
    """A German shop's order, 19% VAT, in REST API v3 shape: two mugs at 11.90 with tax (10.00
    without) and a tee, a coupon (2.00 + 0.38 tax off the mugs), a taxable gift-wrap fee
    (2.50 + 0.48), a negative fee (a loyalty discount, -1.00 - 0.19) and shipping (4.20 + 0.80).

    The amounts are what WooCommerce stores either way (line, fee and shipping totals without
    tax); `prices_include_tax` only says how the buyer saw the prices. total = 18.00 + 15.00 +
    2.50 - 1.00 + 4.20 + cart_tax 6.56 + shipping_tax 0.80 = 46.06."""
    order = copy.deepcopy(WC_ORDER)
    order |= {
        "id": _unique_id(),
        "currency": "EUR",
        "prices_include_tax": prices_include_tax,
        "discount_total": "2.00",
        "discount_tax": "0.38",
        "shipping_total": "4.20",
        "shipping_tax": "0.80",
        "cart_tax": "6.56",
        "total": "46.06",
        "total_tax": "7.36",
        "customer_note": "Bitte an der Tür klingeln / please ring",
    }
    order["line_items"] = [
        {
            "id": 401,
            "name": "Mug",
            "product_id": 93,
            "variation_id": 0,
            "quantity": 2,
            "tax_class": "",
            "subtotal": "20.00",
            "subtotal_tax": "3.80",
            "total": "18.00",
            "total_tax": "3.42",
            "taxes": [{"id": 1, "total": "3.42", "subtotal": "3.80"}],
            "meta_data": [],
            "sku": "MUG-001",
            "price": 9,
        },
        {
            "id": 402,
            "name": "Blue tee - M",
            "product_id": 22,
            "variation_id": 23,
            "quantity": 1,
            "tax_class": "",
            "subtotal": "15.00",
            "subtotal_tax": "2.85",
            "total": "15.00",
            "total_tax": "2.85",
            "taxes": [{"id": 1, "total": "2.85", "subtotal": "2.85"}],
            "meta_data": [],
            "sku": "TEE-BLUE-M",
            "price": 15,
        },
    ]
    order["fee_lines"] = [
        {
            "id": 403,
            "name": "Geschenkverpackung",
            "tax_class": "",
            "tax_status": "taxable",
            "total": "2.50",
            "total_tax": "0.48",
            "taxes": [{"id": 1, "total": "0.48", "subtotal": ""}],
            "meta_data": [],
        },
        {
            "id": 404,
            "name": "Treuerabatt",
            "tax_class": "",
            "tax_status": "taxable",
            "total": "-1.00",
            "total_tax": "-0.19",
            "taxes": [{"id": 1, "total": "-0.19", "subtotal": ""}],
            "meta_data": [],
        },
    ]
    order["shipping_lines"] = [
        {
            "id": 405,
            "method_title": "Flat rate",
            "method_id": "flat_rate",
            "total": "4.20",
            "total_tax": "0.80",
            "taxes": [{"id": 1, "total": "0.80"}],
            "meta_data": [],
        }
    ]
    order["tax_lines"] = [
        {"id": 406, "rate_code": "DE-MWST-1", "rate_id": 1, "tax_total": "6.56", "shipping_tax_total": "0.80"}
    ]
    order["coupon_lines"] = [{"id": 407, "code": "zwei", "discount": "2.00", "discount_tax": "0.38"}]
    return order


def _deliver(harness: Any, tracking_id: str) -> dict[str, Any]:
    """Drain the queue until the order is final; the order the BigCommerce sandbox created."""
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status.value == "SUCCEEDED", outcome
    [created] = harness.orders_with_reference(tracking_id)
    return created


@pytest.mark.parametrize("prices_include_tax", [False, True], ids=["ex-tax", "inc-tax"])
def test_woocommerce_fee_lines_reach_the_provider_at_the_order_total(harness, prices_include_tax):
    order = wc_order_with_fees(prices_include_tax=prices_include_tax)
    canonical = CanonicalOrder.model_validate(from_woocommerce(order))
    assert canonical.taxes_included is prices_include_tax
    assert canonical.total == canonical.computed_total() == Decimal("46.06")
    assert canonical.tax() == Decimal("7.36")
    fee = canonical.lines[-1]
    assert (fee.sku, fee.name, fee.quantity) == (None, "Geschenkverpackung", 1)
    if prices_include_tax:  # as the buyer saw them: 11.90 a mug, the fee 2.98, 1.19 off, shipping 5.00
        assert [str(line.unit_price) for line in canonical.lines] == ["11.90", "17.85", "2.98"]
        assert (canonical.lines[0].discount, canonical.order_discount) == (Decimal("2.38"), Decimal("1.19"))
        assert canonical.shipping_total == Decimal("5.00")
    else:
        assert [str(line.unit_price) for line in canonical.lines] == ["10.00", "15.00", "2.50"]
        assert (canonical.lines[0].discount, canonical.order_discount) == (Decimal("2.00"), Decimal("1.00"))
        assert canonical.shipping_total == Decimal("4.20")

    body = _php_json(order)
    assert b"T\\u00fcr" in body and b"\\/" in body  # the bytes WooCommerce signs
    r = harness.post(WC_SOURCE, body, _wc_signed(body))
    assert r.status_code == 202 and "status" not in r.json(), r.text
    created = _deliver(harness, r.json()["tracking_id"])
    assert created["order"]["currency_code"] == "EUR"
    assert Decimal(created["order"]["total_inc_tax"]) == Decimal("46.06")
    products = created["request"]["products"]
    assert [p.get("name") for p in products if "product_id" not in p] == ["Geschenkverpackung"]


def test_woocommerce_negative_fee_beyond_the_lines_is_recorded_failed_not_sent(harness):
    """WooCommerce caps a negative fee at the lines plus shipping, so it can eat into shipping;
    the canonical order cannot state that (its discounts never exceed the lines)."""
    order = wc_order_with_fees(prices_include_tax=False)
    order["fee_lines"] = [order["fee_lines"][1] | {"total": "-36.00", "total_tax": "0.00"}]
    order |= {"cart_tax": "6.27", "total_tax": "7.07", "total": "8.27"}  # 33 - 36 + 4.20 + 7.07
    before = len(harness.sandbox_orders())
    body = _php_json(order)
    r = harness.post(WC_SOURCE, body, _wc_signed(body))
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["status"] == "FAILED" and answer["error"]["code"] == "VALIDATION_FAILED"
    assert [f["code"] for f in answer["error"]["fields"]] == ["discount_too_large"]
    [outcome] = harness.outcomes(answer["tracking_id"])
    assert (outcome.status.value, outcome.error_code) == ("FAILED_PERMANENT", "VALIDATION_FAILED")
    assert len(harness.sandbox_orders()) == before


def test_woocommerce_fee_that_cannot_be_read_is_recorded_failed_with_its_code(harness):
    order = wc_order_with_fees(prices_include_tax=False)
    order["fee_lines"][0]["total"] = "2,50"
    body = _php_json(order)
    r = harness.post(WC_SOURCE, body, _wc_signed(body))
    assert r.status_code == 202 and r.json()["status"] == "FAILED", r.text
    assert r.json()["error"]["fields"] == [
        {
            "field": "fee_lines.0.total",
            "code": "fee_unreadable",
            "message": "total is not a number: the order's total cannot be stated exactly",
        }
    ]


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded"])
def test_woocommerce_activation_ping_is_unsigned_and_answered_200_exactly(harness, content_type):
    """`WC_Webhook::deliver_ping`: `webhook_id=<id>`, a user agent and no X-WC-Webhook-* header
    (no signature); any status but 200 leaves the webhook pending in WooCommerce."""
    headers = {"User-Agent": "WooCommerce/8.5.0 Hookshot (WordPress/6.4.3)"}
    if content_type:
        headers["Content-Type"] = content_type
    before = len(harness.sandbox_orders())
    r = harness.post(WC_SOURCE, b"webhook_id=12", headers)
    assert r.status_code == 200 and r.json() == {"ignored": True}, r.text
    assert len(harness.sandbox_orders()) == before
    # an unsigned body that is not exactly the ping still needs a signature
    assert harness.post(WC_SOURCE, b"webhook_id=12&total=1", headers).status_code == 401


# --- BigCommerce as a storefront -----------------------------------------------------------------

_ADDRESS = {
    "first_name": "Zoë",
    "last_name": "Doe",
    "street_1": "12 Hauptstraße",
    "city": "Köln",
    "state": "Nordrhein-Westfalen",
    "zip": "50667",
    "country": "Germany",
    "country_iso2": "DE",
    "email": "zoe@example.com",
}
# Two mugs at 10.00 (11.90 with 19% tax), shipping 5.00 (5.95): 29.75 before the case's own terms.
_CHECKOUT = {
    "billing_address": _ADDRESS,
    "shipping_addresses": [_ADDRESS],
    "products": [{"name": "Mug", "sku": "MUG-001", "quantity": 2, "price_ex_tax": 10, "price_inc_tax": 11.9}],
    "shipping_cost_ex_tax": "5.00",
    "shipping_cost_inc_tax": "5.95",
    "default_currency_code": "EUR",
}
BC_CASES = {
    "coupon_discount": ({"coupon_discount": "5.00"}, "24.75"),
    "discount_amount and coupon_discount": ({"discount_amount": "1.50", "coupon_discount": "5.00"}, "23.25"),
    "handling_cost": ({"handling_cost_ex_tax": "2.00", "handling_cost_inc_tax": "2.38"}, "32.13"),
    "wrapping_cost": ({"wrapping_cost_ex_tax": "3.00", "wrapping_cost_inc_tax": "3.57"}, "33.32"),
    # a tax-inclusive store: the coupon (5.95 with tax) also takes its tax off, so BigCommerce's
    # totals are 23.80 with tax, 20.00 without (total_tax 3.80), not the same 5.95 off both sides
    "tax-inclusive with a coupon": (
        {
            "is_tax_inclusive_pricing": True,
            "coupon_discount": "5.95",
            "total_ex_tax": "20.00",
            "total_inc_tax": "23.80",
        },
        "23.80",
    ),
}


def _store_checkout(harness: Any, terms: dict[str, Any]) -> dict[str, Any]:
    """An order placed by the store's checkout (the sandbox's checkout route), as the store's API
    answers it."""
    body = _CHECKOUT | terms | {"external_order_id": f"checkout-{time.time_ns()}"}
    store = f"{harness.sandbox}/bigcommerce/stores/{BC_STORE}"
    r = requests.post(f"{store}/_sandbox/checkout", json=body, headers=BC_TOKEN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("terms, total", BC_CASES.values(), ids=BC_CASES.keys())
def test_bigcommerce_storefront_order_terms_reach_the_provider_at_its_total(harness, terms, total):
    placed = _store_checkout(harness, terms)
    assert placed["total_inc_tax"] == f"{total}00"  # BigCommerce's four decimals
    store = f"{harness.sandbox}/bigcommerce/stores/{BC_STORE}/v2/orders/{placed['id']}"
    products = requests.get(f"{store}/products", headers=BC_TOKEN, timeout=10).json()
    canonical = CanonicalOrder.model_validate(from_bigcommerce(placed, products, [_ADDRESS]))
    assert canonical.total == canonical.computed_total() == Decimal(total)
    assert canonical.taxes_included is bool(terms.get("is_tax_inclusive_pricing"))

    delivery = {
        "scope": "store/order/created",
        "store_id": "1001",
        "data": {"type": "order", "id": placed["id"]},
        "hash": hashlib.sha1(str(placed["id"]).encode()).hexdigest(),
        "created_at": int(time.time()),
        "producer": f"stores/{BC_STORE}",
    }
    r = harness.post(BC_SOURCE, json.dumps(delivery), {"Content-Type": "application/json"} | BC_HEADER)
    assert r.status_code == 202 and "status" not in r.json(), r.text
    created = _deliver(harness, r.json()["tracking_id"])
    assert created["order"]["currency_code"] == "EUR"
    assert Decimal(created["order"]["total_inc_tax"]) == Decimal(total)


# --- the demo's WooCommerce samples (events/) ----------------------------------------------------


def _sample(name: str) -> dict[str, Any]:
    from pathlib import Path

    return json.loads((Path(__file__).parent.parent / "events" / name).read_text())


def test_woocommerce_demo_samples_are_signed_with_the_local_secret_and_do_what_they_say(harness):
    """The fee sample carries its signature (the demo re-signs Shopify and Standard Webhooks
    samples only): it must verify with the local configuration's secret, so it cannot drift."""
    from orderbridge import wiring
    from orderbridge.intake.signatures import verify_hmac

    fees = _sample("api-webhook-woocommerce-order-fees.json")
    secrets = wiring.credential_store().get("orderbridge/webhooks/woocommerce-demo")["secrets"]
    body = fees["body"].encode()
    verify_hmac(
        body, fees["headers"], secrets, header="X-WC-Webhook-Signature", algorithm="sha256", encoding="base64"
    )
    r = harness.post(fees["path"], body, fees["headers"])
    assert r.status_code == fees["x-orderbridge-demo"]["expect"]["http_status"], r.text
    created = _deliver(harness, r.json()["tracking_id"])
    assert Decimal(created["order"]["total_inc_tax"]) == Decimal(json.loads(body)["total"])

    ping = _sample("api-webhook-woocommerce-ping.json")
    r = harness.post(ping["path"], ping["body"], ping["headers"])
    assert r.status_code == ping["x-orderbridge-demo"]["expect"]["http_status"] == 200, r.text
