"""BigCommerce receives the order the buyer placed, exactly: currency and total, over real HTTP.

Every shared Shopify case (`../shared/cases/shopify`, beside the checkout)
goes through the canonical order and the adapter to the BigCommerce sandbox; the sandbox's total
(computed by BigCommerce's rule) and currency must be the source's `total_price` and `currency`.
Property tests do the same for generated orders in JPY (0 decimals), USD (2) and KWD (3), with
line and order discounts, tax inclusive and exclusive, shipping with and without tax.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderbridge.exceptions import RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import Destination
from orderbridge.models.order import CanonicalOrder
from orderbridge.providers.base import Delivery, ResultKind
from orderbridge.providers.bigcommerce import BigCommerceProvider, bigcommerce_total
from orderbridge_sandboxes import SandboxConfig, SandboxServer, serve
from orderbridge_sandboxes.bigcommerce import BigCommerceAccount, validate_order
from tests.contract import bigcommerce_order_post_errors
from tests.factories import SHOPIFY_CASES, new_tracking_id, shared_case

ROOT = Path(__file__).resolve().parents[1]
CASES = sorted(SHOPIFY_CASES)

STORE = "moneystore"
TOKEN = "money-token"
CATALOG_PRICE = "499.00"  # the store's price for every iPod: higher than what the buyers paid
ACCOUNT = {
    "token": TOKEN,
    "currencies": ["JPY", "KWD"],
    "rate_limit": {"quota": 100000, "window_ms": 1000},
    "catalog": {
        "201": {"name": "IPod Nano - 8gb", "price": CATALOG_PRICE, "variants": [11, 12, 13]},
        "202": {"name": "IPod Nano - 8GB", "price": CATALOG_PRICE},
        "203": {"name": "Mug", "price": "12.50"},
    },
}
ROUTE_CATALOG: dict[str, dict[str, Any]] = {
    "IPOD2008GREEN": {"product_id": 201, "variant_id": 11},
    "IPOD2008RED": {"product_id": 201, "variant_id": 12},
    "IPOD2008BLACK": {"product_id": 201, "variant_id": 13},
    "IPOD2008PINK": {"product_id": 202},
    "MUG": {"product_id": 203},
}
CURRENCIES = ["USD", "JPY", "KWD"]
EXAMPLES = int(os.environ.get("ORDERBRIDGE_PROPERTY_EXAMPLES", "40"))
PROPERTIES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = serve(SandboxConfig.model_validate({"bigcommerce": {"accounts": {STORE: ACCOUNT}}}), port=0)
    yield srv
    srv.shutdown()


def _destination(server: SandboxServer) -> Destination:
    return Destination(
        provider="bigcommerce",
        secret_id="orderbridge/providers/test",
        base_url=f"{server.url}/bigcommerce",
        settings={"store_hash": STORE, "currencies": CURRENCIES, "external_source": "orderbridge"},
    )


def send(server: SandboxServer, order: CanonicalOrder) -> dict[str, Any]:
    """Adapter -> contract and sandbox validator -> HTTP -> the order the sandbox created."""
    adapter = BigCommerceProvider(destination=_destination(server))
    delivery = Delivery(
        tracking_id=new_tracking_id(),
        destination_id="bc-money",
        destination=adapter.destination,
        order=order,
        source="money-test",
        catalog=ROUTE_CATALOG,
    )
    request = adapter.build_create(delivery)
    body = json.loads(json.dumps(request.json))  # what goes on the wire
    assert bigcommerce_order_post_errors(body) == [], body
    assert validate_order(body, BigCommerceAccount.model_validate(ACCOUNT))[1] == [], body
    response = requests.request(
        request.method,
        request.url,
        json=request.json,
        headers={**request.headers, **adapter.auth_headers({"access_token": TOKEN})},
        timeout=10,
    )
    result = adapter.parse_create(response)
    assert result.kind is ResultKind.SUCCEEDED, (result, response.text)
    kept = requests.get(f"{server.url}/_sandbox/bigcommerce/orders", timeout=10).json()
    [created] = [k["order"] for k in kept if k["order"]["id"] == int(result.provider_order_id or 0)]
    # the adapter's own computation of BigCommerce's rule agrees with the sandbox's
    totals = bigcommerce_total(body)
    assert totals is not None and Decimal(created["total_inc_tax"]) == totals.total_inc_tax
    return created


def charged(created: dict[str, Any]) -> tuple[str, Decimal]:
    """(currency, total) of the order BigCommerce created, the total at the currency's minor unit."""
    currency = created["default_currency_code"]
    assert created["currency_code"] == currency
    total = Decimal(created["total_inc_tax"])
    assert total == total.quantize(money.quantum(currency)), "more decimals than the currency has"
    return currency, total.quantize(money.quantum(currency))


# --- the shared Shopify cases ------------------------------------------------------------------------


def _d(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _address(a: dict[str, Any] | None) -> dict[str, Any] | None:
    if not a:
        return None
    fields = {
        "first_name": a.get("first_name"),
        "last_name": a.get("last_name"),
        "company": a.get("company"),
        "address1": a.get("address1"),
        "address2": a.get("address2"),
        "city": a.get("city"),
        "province": a.get("province"),
        "zip": a.get("zip"),
        "country": a.get("country_code"),
        "phone": a.get("phone"),
    }
    return {k: v for k, v in fields.items() if v not in (None, "")}


def canonical_from_case(payload: dict[str, Any]) -> CanonicalOrder:
    """The canonical order straight from a Shopify order's numbers (until the Shopify mapper is
    money-aware): line prices, discount allocations and tax lines; shipping after its discounts
    with its tax; what the subtotal takes off that no line carries as the order discount."""
    lines = []
    for item in payload["line_items"]:
        allocations = item.get("discount_allocations")
        discount = (
            sum((_d(a["amount"]) for a in allocations), Decimal(0))
            if allocations is not None
            else _d(item.get("total_discount"))
        )
        lines.append(
            {
                "sku": item.get("sku") or None,
                "name": item.get("name") or item.get("title"),
                "variant_title": item.get("variant_title") or None,
                "quantity": item["quantity"],
                "unit_price": item["price"],
                "discount": discount,
                "tax": sum((_d(t["price"]) for t in item.get("tax_lines") or []), Decimal(0)),
                "options": {
                    p["name"]: str(p["value"])
                    for p in item.get("properties") or []
                    if p.get("name") and p.get("value") not in (None, "")
                },
            }
        )
    gross = sum((_d(i["price"]) * i["quantity"] for i in payload["line_items"]), Decimal(0))
    line_discounts = sum((line["discount"] for line in lines), Decimal(0))
    shipping_lines = payload.get("shipping_lines") or []
    customer = payload.get("customer") or {}
    codes = [c["code"] for c in payload.get("discount_codes") or [] if c.get("code")]
    order = {
        "external_order_id": str(payload["id"]),
        "currency": payload["currency"],
        "buyer": {
            "email": payload.get("email") or customer.get("email"),
            "first_name": customer.get("first_name"),
            "last_name": customer.get("last_name"),
            "phone": payload.get("phone") or customer.get("phone"),
        },
        "billing_address": _address(payload.get("billing_address")),
        "shipping_address": _address(payload.get("shipping_address")),
        "lines": lines,
        "coupon": codes[0] if codes else None,
        "order_discount": gross - line_discounts - _d(payload["subtotal_price"]),
        "shipping_total": sum(
            (_d(s.get("discounted_price", s.get("price"))) for s in shipping_lines), Decimal(0)
        ),
        "shipping_tax": sum(
            (_d(t["price"]) for s in shipping_lines for t in s.get("tax_lines") or []), Decimal(0)
        ),
        "taxes_included": bool(payload.get("taxes_included")),
        "total_tax": payload.get("total_tax"),
        "total": payload["total_price"],
        "test": bool(payload.get("test")),
    }
    order["buyer"] = {k: v for k, v in order["buyer"].items() if v}
    return CanonicalOrder.model_validate({k: v for k, v in order.items() if v is not None})


def _case(name: str) -> dict[str, Any]:
    return json.loads(shared_case("shopify", name).read_bytes())


@pytest.mark.parametrize("name", CASES)
def test_every_shopify_case_arrives_with_its_currency_and_total(server, name):
    payload = _case(name)
    created = send(server, canonical_from_case(payload))
    assert charged(created) == (payload["currency"], Decimal(payload["total_price"]))


@pytest.mark.parametrize("name", CASES)
def test_every_shopify_case_through_the_shopify_mapper(server, name):
    from orderbridge.intake.mapping import from_shopify

    payload = _case(name)
    mapped = from_shopify(payload)
    if "total" not in mapped or "taxes_included" not in mapped:
        pytest.skip("the Shopify mapper does not carry the order's money yet")
    created = send(server, CanonicalOrder.model_validate(mapped))
    assert charged(created) == (payload["currency"], Decimal(payload["total_price"]))


def test_paid_below_the_catalog_price_arrives_as_paid(server):
    created = send(server, canonical_from_case(_case("order-usd-tax.json")))
    assert charged(created) == ("USD", Decimal("409.94"))
    assert Decimal(created["total_tax"]) == Decimal("11.94")
    products = requests.get(
        f"{server.url}/bigcommerce/stores/{STORE}/v2/orders/{created['id']}/products",
        headers={"X-Auth-Token": TOKEN},
        timeout=10,
    ).json()
    assert {Decimal(p["price_ex_tax"]) for p in products} == {Decimal("199.00")}  # not 499.00


def test_hong_kong_without_a_zip_is_taken(server):
    created = send(server, canonical_from_case(_case("order-hk-null-zip.json")))
    assert created["billing_address"]["country_iso2"] == "HK" and created["billing_address"]["zip"] == ""


def test_403_after_a_5_discount_totals_403(server):
    created = send(server, canonical_from_case(_case("test-notification-discount.json")))
    assert charged(created) == ("USD", Decimal("403.00"))
    # The 5.00 is the second line's own discount: it is in that line's price (194.00), not at
    # order level, so both of BigCommerce's subtotals are the lines as the buyer paid them.
    assert Decimal(created["discount_amount"]) == Decimal("0")
    assert Decimal(created["subtotal_ex_tax"]) == Decimal(created["subtotal_inc_tax"]) == Decimal("393.00")
    products = requests.get(
        f"{server.url}/bigcommerce/stores/{STORE}/v2/orders/{created['id']}/products",
        headers={"X-Auth-Token": TOKEN},
        timeout=10,
    ).json()
    assert [Decimal(p["price_inc_tax"]) for p in products] == [Decimal("199.00"), Decimal("194.00")]


# --- named examples --------------------------------------------------------------------------------

BUYER = {"email": "buyer@example.com", "first_name": "Alex", "last_name": "Example"}
ADDRESS = {"address1": "1 Sample Street", "city": "Louisville", "zip": "40202", "country": "US"}


def _order(**fields: Any) -> CanonicalOrder:
    return CanonicalOrder.model_validate({"buyer": BUYER, "billing_address": ADDRESS, **fields})


def test_jpy_59400_arrives_as_jpy_59400(server):
    order = _order(
        currency="JPY",
        lines=[{"name": "Tea set", "quantity": 2, "unit_price": "27000", "tax": "5400"}],
        total="59400",
    )
    assert charged(send(server, order)) == ("JPY", Decimal("59400"))


def test_59_45_including_4_50_tax_totals_59_45(server):
    order = _order(
        lines=[{"sku": "MUG", "quantity": 1, "unit_price": "49.95", "tax": "3.64"}],
        shipping_total="9.50",
        shipping_tax="0.86",
        taxes_included=True,
        total_tax="4.50",
        total="59.45",
    )
    created = send(server, order)
    assert charged(created) == ("USD", Decimal("59.45"))
    assert Decimal(created["total_tax"]) == Decimal("4.50")


def test_kwd_three_decimals(server):
    order = _order(
        currency="KWD",
        lines=[{"name": "Dates", "quantity": 3, "unit_price": "1.255", "discount": "0.005", "tax": "0.001"}],
        shipping_total="0.750",
    )
    assert charged(send(server, order)) == ("KWD", Decimal("4.511"))


def test_a_currency_the_store_does_not_take_is_refused_before_sending(server):
    adapter = BigCommerceProvider(destination=_destination(server))
    order = _order(currency="EUR", lines=[{"name": "Mug", "quantity": 1, "unit_price": "5.00"}])
    d = Delivery(new_tracking_id(), "bc-money", adapter.destination, order, "money-test", ROUTE_CATALOG)
    with pytest.raises(RequestRejectedError) as err:
        adapter.build_create(d)
    assert err.value.code == "CURRENCY_NOT_SUPPORTED"


# --- properties ------------------------------------------------------------------------------------


@st.composite
def money_orders(draw: st.DrawFn) -> CanonicalOrder:
    currency = draw(st.sampled_from(["JPY", "USD", "KWD"]))
    unit = money.quantum(currency)

    def amount(most: int) -> Decimal:
        return draw(st.integers(0, max(most, 0))) * unit

    taxes_included = draw(st.booleans())
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        quantity = draw(st.integers(1, 7))
        price = amount(1_000_000)
        gross_units = int(price / unit) * quantity
        line: dict[str, Any] = {"quantity": quantity, "unit_price": price}
        if draw(st.booleans()):
            line["discount"] = amount(gross_units)
        if draw(st.booleans()):
            line["tax"] = amount(gross_units // 4)
        if draw(st.booleans()):
            line["sku"] = draw(st.sampled_from(sorted(ROUTE_CATALOG)))
        else:
            line["name"] = draw(st.sampled_from(["Tea", "Gift card", "Print"]))
            if draw(st.booleans()):
                line["variant_title"] = draw(st.sampled_from(["Large", "Gold / A4"]))
        lines.append(line)
    nets = sum(
        int((line["unit_price"] * line["quantity"] - line.get("discount", 0)) / unit) for line in lines
    )
    fields: dict[str, Any] = {"currency": currency, "lines": lines, "taxes_included": taxes_included}
    if draw(st.booleans()):
        fields["order_discount"] = amount(nets)
    if draw(st.booleans()):
        shipping = amount(50_000)
        fields["shipping_total"] = shipping
        if draw(st.booleans()):
            fields["shipping_tax"] = amount(int(shipping / unit) // 4)
    order = _order(**fields)
    if draw(st.booleans()):  # tax stated for the order as a whole, more than the lines carry
        order = order.model_copy(update={"total_tax": order.tax() + amount(1000)})
        order = CanonicalOrder.model_validate(order.model_dump())
    if draw(st.booleans()):  # the source states its total
        order = CanonicalOrder.model_validate({**order.model_dump(), "total": order.computed_total()})
    return order


@PROPERTIES
@given(order=money_orders())
def test_generated_orders_arrive_with_the_amount_due_or_are_refused(server, order):
    try:
        created = send(server, order)
    except RequestRejectedError as exc:
        assert exc.code and exc.message
        return
    due = order.amount_due()
    assert due is not None
    assert charged(created) == (order.currency, due.quantize(money.quantum(order.currency)))
    # BigCommerce's tax on the order is the order's tax, none invented or lost (unless a discount
    # larger than the amount before tax leaves BigCommerce's total ex tax at its floor of 0)
    if Decimal(created["total_ex_tax"]) > 0:
        assert Decimal(created["total_tax"]) == order.tax()
