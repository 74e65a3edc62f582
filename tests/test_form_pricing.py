"""A form's prices come from the route's `items`: `intake.pricing.price_form_order` and the catalog model."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from orderbridge.exceptions import IntakeRejectedError
from orderbridge.intake import mapping
from orderbridge.intake.pricing import price_form_order
from orderbridge.models.config import CatalogItem, OrderbridgeConfig, Route
from orderbridge.models.order import CanonicalOrder

ITEMS = {
    "TEE-BLUE-M": CatalogItem(name="Blue tee, size M", unit_price=Decimal("15.00"), currency="USD"),
    "MUG-001": CatalogItem(name="Mug", unit_price=Decimal("12.50"), currency="USD"),
}


def form(**changes):
    fields = {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address": {"address1": "12 Row", "city": "London", "zip": "N1 9GU", "country": "GB"},
        "items": {"0": {"sku": "TEE-BLUE-M", "quantity": "2"}, "2": {"sku": "MUG-001", "quantity": "1"}},
    }
    fields.update(changes)
    return mapping.from_form(fields, ip=None, user_agent=None)


def test_lines_get_the_servers_price_name_and_currency():
    raw = form()
    priced = price_form_order(raw, ITEMS)
    assert priced["currency"] == "USD"
    assert [(line["sku"], line["unit_price"], line["name"]) for line in priced["lines"]] == [
        ("TEE-BLUE-M", Decimal("15.00"), "Blue tee, size M"),
        ("MUG-001", Decimal("12.50"), "Mug"),
    ]
    assert "unit_price" not in raw["lines"][0]  # the input is left as it was
    order = CanonicalOrder.model_validate(priced)
    assert order.priced and order.amount_due() == Decimal("42.50")


def test_buyer_supplied_money_is_never_used():
    """A tampered post: prices, a currency and totals in the body are dropped, the server's stand."""
    raw = form(currency="JPY")
    raw |= {"total": "0.01", "order_discount": "40", "shipping_total": "0", "taxes_included": True}
    raw["lines"][0] |= {"unit_price": "0.01", "discount": "15", "tax": "0", "name": "Free tee"}
    priced = price_form_order(raw, ITEMS)
    assert priced["currency"] == "USD"
    for key in ("total", "order_discount", "shipping_total", "taxes_included"):
        assert key not in priced
    assert priced["lines"][0] == {
        "sku": "TEE-BLUE-M",
        "quantity": "2",
        "name": "Blue tee, size M",
        "unit_price": Decimal("15.00"),
    }
    assert CanonicalOrder.model_validate(priced).amount_due() == Decimal("42.50")


def test_the_form_mapping_drops_a_posted_line_price_too():
    raw = form(items={"0": {"sku": "MUG-001", "quantity": "1", "unit_price": "0.01", "price": "0"}})
    assert price_form_order(raw, ITEMS)["lines"] == [
        {"sku": "MUG-001", "quantity": "1", "name": "Mug", "unit_price": Decimal("12.50")}
    ]


def test_a_sku_not_sold_here_is_refused_at_its_line():
    raw = form(
        items={
            "0": {"sku": "MUG-001", "quantity": "1"},
            "1": {"sku": "RETIRED-001", "quantity": "1"},
            "3": {"name": "Anything I like", "quantity": "1"},
        }
    )
    with pytest.raises(IntakeRejectedError) as caught:
        price_form_order(raw, ITEMS)
    exc = caught.value
    assert (exc.status, exc.code) == (422, "VALIDATION_FAILED")
    assert [(f["field"], f["code"]) for f in exc.fields] == [  # canonical paths: the intake renames
        ("lines.1.sku", "UNKNOWN_ITEM"),  # them to the sender's own (tests/test_form_errors.py)
        ("lines.2.sku", "UNKNOWN_ITEM"),
    ]
    assert exc.fields[0]["message"].startswith("RETIRED-001 is not sold here")
    assert exc.fields[1]["message"].startswith("Anything I like is not sold here")


def test_a_route_without_items_leaves_the_order_unpriced_but_still_drops_buyer_money():
    raw = form(currency="EUR")
    raw["lines"][0]["unit_price"] = "0.01"
    priced = price_form_order(raw, {})
    assert "currency" not in priced and all("unit_price" not in line for line in priced["lines"])
    assert not CanonicalOrder.model_validate(priced).priced


def test_no_lines_is_left_to_the_order_model():
    raw = form(items={})
    assert price_form_order(raw, ITEMS)["lines"] == []
    raw.pop("lines")
    assert "lines" not in price_form_order(raw, ITEMS)


def test_up_to_the_models_500_lines_are_priced_exactly():
    raw = form(items={str(i): {"sku": "MUG-001", "quantity": "3"} for i in range(500)})
    order = CanonicalOrder.model_validate(price_form_order(raw, ITEMS))
    assert len(order.lines) == 500 and order.amount_due() == Decimal("18750.00")


# --- the configuration --------------------------------------------------------------------------


def route(items, catalog=None):
    catalog = catalog or {"A": {"product_id": 1}, "B": {"product_id": 2}}
    return Route.model_validate({"destinations": [{"destination": "bc", "catalog": catalog}], "items": items})


def test_catalog_items_are_checked():
    good = route({"A": {"name": "A", "unit_price": "1500", "currency": "JPY"}})
    assert good.currency == "JPY" and good.items["A"].unit_price == Decimal(1500)
    assert route({}).currency is None
    bad = [
        ({"A": {"name": "A", "unit_price": "1.005", "currency": "USD"}}, "more decimals than USD"),
        ({"A": {"name": "A", "unit_price": "1.5", "currency": "JPY"}}, "more decimals than JPY"),
        ({"A": {"name": "A", "unit_price": "1", "currency": "ZZZ"}}, "ISO 4217"),
        ({"A": {"name": "A", "unit_price": "-1", "currency": "USD"}}, "greater than or equal to 0"),
        ({"A": {"name": "A", "unit_price": "NaN", "currency": "USD"}}, "finite"),
        ({"A": {"name": "", "unit_price": "1", "currency": "USD"}}, "at least 1 character"),
        ({"A": {"name": "A\x1b[31m", "unit_price": "1", "currency": "USD"}}, "pattern"),
        ({"A": {"name": "A", "unit_price": "1", "currency": "USD", "price": "0"}}, "Extra inputs"),
        (
            {
                "A": {"name": "A", "unit_price": "1", "currency": "USD"},
                "B": {"name": "B", "unit_price": "1", "currency": "EUR"},
            },
            "share one currency, found EUR, USD",
        ),
        ({"C": {"name": "C", "unit_price": "1", "currency": "USD"}}, "['C'] are not in destination 'bc'"),
    ]
    for items, message in bad:
        with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
            route(items)


def test_local_configuration_prices_both_demo_forms_and_keeps_the_provider_references():
    text = (Path(__file__).resolve().parents[1] / "config" / "local.json").read_text()
    raw = json.loads(text.replace("${SANDBOX_URL}", "http://127.0.0.1:4010"))
    raw.pop("local")  # the local run's block, never uploaded (orderbridge_local.setup)
    config = OrderbridgeConfig.model_validate(copy.deepcopy(raw))
    for key in ("fk_demo0001", "fk_komerza01"):
        r = config.routes[config.forms[key].route]
        assert r.currency == "USD" and set(r.items) == {"TEE-BLUE-M", "TEE-BLUE-L", "MUG-001"}
    # the destinations' catalogs are what adapters read, untouched
    assert config.routes["default"].destinations[0].catalog["TEE-BLUE-M"] == {
        "product_id": 111,
        "variant_id": 77,
    }
