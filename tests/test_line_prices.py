"""Line prices reach the provider as the buyer paid them: each per-unit price (and BigCommerce's
ex/inc-tax pair) times its quantity is exactly the line, and the pair differs by exactly the line's
tax.

The rule (orderbridge.providers.bigcommerce, `_unit_prices`): a line goes as its amount after its
own discount, without and with its tax, split over its units in whole minor units
(`money.split_units`); only the order's own discount stays at order level (`discount_amount`).
Found by a tester against the local run:

A. WooCommerce 3 x MUG-001 for 10.00 went to BigCommerce with no price (the catalog's 12.50 a
   unit, subtotal 30.00 against a total of 13.00): now the canonical line carries `line_price`
   10.00 and BigCommerce gets 1 x 3.34 + 2 x 3.33 of the same product.
B. A discounted, taxed line went as a pre-discount price with post-discount tax (100.00 / 107.20,
   ex 10.19 for 11.90 a unit, ex 101.90 for 119.00): now the pair is the line after its discount,
   90.00 / 97.20 (8% on both), 9.00 / 10.71 (19%), 90.00 / 107.10 (19%).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderbridge.models import money
from orderbridge.models.config import Destination
from orderbridge.models.order import CanonicalOrder
from orderbridge.providers.base import Delivery, Provider
from orderbridge.providers.bigcommerce import BigCommerceProvider, bigcommerce_total
from orderbridge.providers.komerza import KomerzaProvider
from orderbridge.providers.lana import LanaProvider
from orderbridge.providers.threekit import ThreekitProvider
from orderbridge.sources.woocommerce import from_woocommerce
from tests.contract import bigcommerce_order_post_errors
from tests.factories import new_tracking_id
from tests.test_sources import WC_ORDER
from tests.test_sources_money import _deliver, _php_json, _unique_id, _wc_signed, wc_order_with_fees

D = Decimal
WC_SOURCE = "/webhooks/woocommerce-demo"
BC_LOCAL = {"X-Auth-Token": "local-bigcommerce-token", "Accept": "application/json"}
BUYER = {"email": "buyer@example.com", "first_name": "Ada", "last_name": "Lovelace"}
ADDRESS = {"address1": "1 Main St", "city": "Springfield", "province": "IL", "zip": "62701", "country": "US"}
SETTINGS: dict[str, dict[str, Any]] = {
    "bigcommerce": {"store_hash": "lines", "currencies": ["USD", "EUR", "JPY", "KWD"]},
    "lana": {"shop_id": "sh_Lines"},
    "komerza": {"store_id": "1b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e51", "gateway": "stripe"},
    "threekit": {"org_id": "7f0e2a9c-8d1b-4c7e-a3f6-2b9d8e7c6a57"},
}
CATALOG: dict[str, dict[str, Any]] = {
    "bigcommerce": {"MUG-001": {"product_id": 112}, "TEE-BLUE-M": {"product_id": 111, "variant_id": 77}},
    "lana": {"MUG-001": {"variant_id": "va_Mug00001", "price": "12.50"}},
    "komerza": {
        "MUG-001": {
            "productId": "9c4d5e6f-7081-4c92-9dae-4f5a6b7c8d9e",
            "variantId": "ad5e6f70-8192-4da3-8ebf-5a6b7c8d9eaf",
            "price": "12.50",
        }
    },
    "threekit": {"MUG-001": {"configurationId": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}},
}
PROVIDERS: dict[str, type[Provider]] = {
    "bigcommerce": BigCommerceProvider,
    "lana": LanaProvider,
    "komerza": KomerzaProvider,
    "threekit": ThreekitProvider,
}


def _order(lines: list[dict[str, Any]], **money_fields: Any) -> CanonicalOrder:
    return CanonicalOrder.model_validate(
        {"buyer": BUYER, "billing_address": ADDRESS, "shipping_address": ADDRESS, "lines": lines}
        | money_fields
    )


def _body(provider: str, order: CanonicalOrder) -> Any:
    """The create request's JSON body as the adapter builds it (no HTTP)."""
    adapter = PROVIDERS[provider](
        destination=Destination(
            provider=provider,
            secret_id="orderbridge/providers/lines",
            base_url=f"http://sandbox.invalid/{provider}",
            settings=SETTINGS[provider] | ({"currency": order.currency} if provider == "komerza" else {}),
        )
    )
    delivery = Delivery(
        tracking_id=new_tracking_id(),
        destination_id=f"{provider}-lines",
        destination=adapter.destination,
        order=order,
        source="line-prices-test",
        catalog=CATALOG[provider],
    )
    return adapter.build_create(delivery).json


def _pairs(body: dict[str, Any]) -> list[tuple[int, Decimal, Decimal]]:
    """BigCommerce products as (quantity, price_ex_tax, price_inc_tax), exact decimals."""
    return [
        (p["quantity"], D(repr(p["price_ex_tax"])), D(repr(p["price_inc_tax"]))) for p in body["products"]
    ]


def _wc_three_mugs_for_ten() -> dict[str, Any]:
    """Finding A: a WooCommerce order of 3 x MUG-001 for 10.00 (the line's subtotal), shipping 3.00,
    no tax: total 13.00."""
    order = copy.deepcopy(WC_ORDER)
    order |= {
        "id": _unique_id(),
        "currency": "USD",
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "3.00",
        "shipping_tax": "0.00",
        "cart_tax": "0.00",
        "total": "13.00",
        "total_tax": "0.00",
        "prices_include_tax": False,
        "fee_lines": [],
        "coupon_lines": [],
        "tax_lines": [],
        "line_items": [
            {
                "id": 501,
                "name": "Mug",
                "product_id": 93,
                "variation_id": 0,
                "quantity": 3,
                "tax_class": "",
                "subtotal": "10.00",
                "subtotal_tax": "0.00",
                "total": "10.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
                "sku": "MUG-001",
                "price": 3.333333,
            }
        ],
        "shipping_lines": [
            {
                "id": 502,
                "method_title": "Flat rate",
                "method_id": "flat_rate",
                "total": "3.00",
                "total_tax": "0.00",
            }
        ],
    }
    return order


# --- A: a line price that does not divide by its quantity -----------------------------------------


def test_woocommerce_three_for_ten_is_a_line_price_on_the_canonical_line():
    order = CanonicalOrder.model_validate(from_woocommerce(_wc_three_mugs_for_ten()))
    [line] = order.lines
    assert (line.unit_price, line.line_price, line.gross(), line.quantity) == (
        None,
        D("10.00"),
        D("10.00"),
        3,
    )
    assert order.priced and order.computed_total() == order.total == D("13.00")


def test_canonical_line_price_must_agree_with_unit_price():
    with pytest.raises(ValueError, match=r"line_price is not unit_price x quantity"):
        _order([{"name": "Pen", "quantity": 3, "unit_price": "3.33", "line_price": "10.00"}])
    agreed = _order([{"name": "Pen", "quantity": 2, "unit_price": "5.00", "line_price": "10.00"}])
    assert agreed.lines[0].gross() == D("10.00")


def test_three_for_ten_goes_to_bigcommerce_as_two_products_adding_up_to_ten():
    order = CanonicalOrder.model_validate(from_woocommerce(_wc_three_mugs_for_ten()))
    body = _body("bigcommerce", order)
    assert [p["product_id"] for p in body["products"]] == [112, 112]
    assert _pairs(body) == [(1, D("3.34"), D("3.34")), (2, D("3.33"), D("3.33"))]
    assert "subtotal_ex_tax" not in body and "total_inc_tax" not in body  # no override needed
    totals = bigcommerce_total(body)
    assert totals is not None
    assert (totals.subtotal_ex_tax, totals.subtotal_inc_tax, totals.total_inc_tax) == (
        D("10.00"),
        D("10.00"),
        D("13.00"),
    )


def test_three_for_ten_at_lana_komerza_and_threekit():
    order = CanonicalOrder.model_validate(from_woocommerce(_wc_three_mugs_for_ten()))
    lana = _body("lana", order)[0]
    mugs = [
        (item["quantity"], lana["custom_items"][item["custom_item_index"]["value"]]["price"])
        for item in lana["line_items"]
        if "custom_item_index" in item
        and lana["custom_items"][item["custom_item_index"]["value"]]["title"].startswith("Mug")
    ]
    assert mugs == [(1, 334), (2, 333)]  # minor units; not the catalog's 12.50 a unit
    komerza = _body("komerza", order)
    assert komerza["cost"] == 13 and "items" not in komerza  # the catalog's 37.50 is not what was paid
    assert "3 x Mug [MUG-001] for 10.00" in komerza["metadata"]["orderbridge_order"]
    threekit = _body("threekit", order)
    meta = threekit["cart"][0]["metadata"]
    assert (meta["line_price"], meta["discount"], meta["tax"]) == ("10.00", "0", "0")
    assert "unit_price" not in meta and threekit["metadata"]["subtotal"] == "10.00"


# --- B: a discounted, taxed line: one consistent pair ---------------------------------------------


def test_shopify_line_100_less_10_with_8_percent_tax_goes_as_90_and_97_20():
    order = _order(
        [
            {
                "sku": "MUG-001",
                "name": "Mug",
                "quantity": 1,
                "unit_price": "100.00",
                "discount": "10.00",
                "tax": "7.20",
            }
        ],
        total="97.20",
    )
    body = _body("bigcommerce", order)
    assert _pairs(body) == [(1, D("90.00"), D("97.20"))]  # 8% on both sides, not 100.00 / 107.20
    assert "discount_amount" not in body  # the line's discount is in its price
    totals = bigcommerce_total(body)
    assert totals is not None and (totals.total_ex_tax, totals.total_inc_tax) == (D("90.00"), D("97.20"))


def test_woocommerce_prices_with_tax_line_goes_as_9_and_10_71_a_unit():
    """wc_order_with_fees: 2 mugs, subtotal 20.00 + subtotal_tax 3.80, coupon 2.00 + 0.38 tax off:
    total 18.00 + total_tax 3.42. Sent before: ex 10.19 (11.90 less 3.42 / 2) with inc 11.90."""
    order = CanonicalOrder.model_validate(from_woocommerce(wc_order_with_fees(prices_include_tax=True)))
    mug = order.lines[0]
    assert (mug.unit_price, mug.discount, mug.tax, order.taxes_included) == (
        D("11.90"),
        D("2.38"),
        D("3.42"),
        True,
    )
    body = _body("bigcommerce", order)
    assert _pairs(body)[0] == (2, D("9.00"), D("10.71"))  # 19% on both sides: 18.00 / 21.42 for two
    assert D(body["discount_amount"]) == order.order_discount == D("1.19")  # the negative fee only
    totals = bigcommerce_total(body)
    assert totals is not None and totals.total_inc_tax == order.total == D("46.06")


def test_shopify_eur_taxes_included_119_less_11_90_goes_as_90_and_107_10():
    order = _order(
        [{"name": "Lamp", "quantity": 1, "unit_price": "119.00", "discount": "11.90", "tax": "17.10"}],
        currency="EUR",
        taxes_included=True,
        total="107.10",
    )
    body = _body("bigcommerce", order)
    assert _pairs(body) == [(1, D("90.00"), D("107.10"))]  # not ex 101.90 with inc 119.00
    totals = bigcommerce_total(body)
    assert totals is not None and (totals.total_ex_tax, totals.total_inc_tax) == (D("90.00"), D("107.10"))


def test_tax_that_does_not_split_over_the_units_splits_the_pair():
    order = _order([{"name": "Pen", "quantity": 3, "unit_price": "1.00", "tax": "0.10"}])
    body = _body("bigcommerce", order)
    assert _pairs(body) == [(1, D("1.00"), D("1.04")), (2, D("1.00"), D("1.03"))]
    assert "subtotal_ex_tax" not in body  # the units carry the line exactly


# --- through the local system to the BigCommerce sandbox ------------------------------------------


def _stored(harness: Any, created: dict[str, Any]) -> list[tuple[int, Decimal, Decimal]]:
    """The products the sandbox stored for the order: (quantity, price_ex_tax, price_inc_tax)."""
    order = created["order"]
    url = f"{harness.sandbox}/bigcommerce/stores/demo123/v2/orders/{order['id']}/products"
    products = requests.get(url, headers=BC_LOCAL, timeout=10).json()
    return [(p["quantity"], D(p["price_ex_tax"]), D(p["price_inc_tax"])) for p in products]


def test_local_run_three_for_ten_reaches_bigcommerce_at_ten(harness):
    body = _php_json(_wc_three_mugs_for_ten())
    r = harness.post(WC_SOURCE, body, _wc_signed(body))
    assert r.status_code == 202, r.text
    created = _deliver(harness, r.json()["tracking_id"])
    order = created["order"]
    assert _stored(harness, created) == [(1, D("3.34"), D("3.34")), (2, D("3.33"), D("3.33"))]
    assert (D(order["subtotal_ex_tax"]), D(order["subtotal_inc_tax"])) == (D("10.00"), D("10.00"))
    assert D(order["total_inc_tax"]) == D("13.00")
    assert bigcommerce_order_post_errors(created["request"]) == []


def test_local_run_woocommerce_prices_with_tax_reach_bigcommerce_as_one_rate(harness):
    body = _php_json(wc_order_with_fees(prices_include_tax=True))
    r = harness.post(WC_SOURCE, body, _wc_signed(body))
    assert r.status_code == 202, r.text
    created = _deliver(harness, r.json()["tracking_id"])
    order = created["order"]
    # mugs 18.00 / 21.42, tee 15.00 / 17.85, gift-wrap fee 2.50 / 2.98: each pair at 19%
    assert _stored(harness, created) == [
        (2, D("9.00"), D("10.71")),
        (1, D("15.00"), D("17.85")),
        (1, D("2.50"), D("2.98")),
    ]
    # The products add up to 35.50 / 42.25, but the order's tax (6.56 on the lines) is less than the
    # lines' 6.75: the loyalty fee's 0.19 tax is in the order discount (1.19 with tax). The subtotal
    # override states the order's own split, so both totals are right: 38.70 ex, 46.06 inc.
    assert (D(order["subtotal_ex_tax"]), D(order["subtotal_inc_tax"])) == (D("35.69"), D("42.25"))
    assert D(order["discount_amount"]) == D("1.19")
    assert (D(order["total_ex_tax"]), D(order["total_inc_tax"])) == (D("38.70"), D("46.06"))


# --- property: per-unit prices x quantities are the lines, exactly ---------------------------------

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def priced_lines(draw: st.DrawFn) -> tuple[str, bool, list[dict[str, Any]]]:
    """1-4 lines in one currency: quantity 1..50, the line's price in minor units (a unit price when
    it divides, else `line_price`), a discount up to it, tax included or not."""
    currency = draw(st.sampled_from(["USD", "JPY", "KWD"]))
    included = draw(st.booleans())
    lines = []
    for i in range(draw(st.integers(1, 4))):
        quantity = draw(st.integers(1, 50))
        gross = draw(st.integers(0, 10**7))
        net = gross - draw(st.integers(0, gross))
        tax = draw(st.integers(0, net if included else 10**6))
        line: dict[str, Any] = {
            "name": f"Thing {i}",
            "quantity": quantity,
            "discount": money.from_minor(gross - net, currency),
            "tax": money.from_minor(tax, currency),
        }
        if gross % quantity:
            line["line_price"] = money.from_minor(gross, currency)
        else:
            line["unit_price"] = money.from_minor(gross // quantity, currency)
        lines.append(line)
    return currency, included, lines


@PROPERTIES
@given(drawn=priced_lines())
def test_per_unit_prices_times_quantities_are_the_lines_exactly(drawn):
    currency, included, lines = drawn
    order = _order(lines, currency=currency, taxes_included=included)
    body = _body("bigcommerce", order)
    products = iter(_pairs(body))
    for line in order.lines:
        net = line.net()
        assert net is not None
        want_ex, want_inc = (net - line.tax, net) if included else (net, net + line.tax)
        got_ex = got_inc = D(0)
        units = 0
        while units < line.quantity:
            quantity, ex, inc = next(products)
            assert money.fits(ex, currency) and money.fits(inc, currency) and ex <= inc
            units += quantity
            got_ex += ex * quantity
            got_inc += inc * quantity
        assert (units, got_ex, got_inc) == (line.quantity, want_ex, want_inc)
    assert next(products, None) is None
    assert "subtotal_ex_tax" not in body and "discount_amount" not in body
    totals = bigcommerce_total(body)
    assert totals is not None and totals.total_inc_tax == order.computed_total()

    lana = _body("lana", order)[0]
    prices = [item["price"] for item in lana["custom_items"]]
    sent = sum(prices[i["custom_item_index"]["value"]] * i["quantity"] for i in lana["line_items"])
    assert money.from_minor(sent, currency) == order.computed_total()
