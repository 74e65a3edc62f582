"""The BigCommerce adapter in isolation: request building, answer reading, the contract."""

import hashlib
import json

import pytest
import requests

from orderbridge.exceptions import CredentialsError, RequestRejectedError
from orderbridge.providers.base import ResultKind
from orderbridge.providers.bigcommerce import BigCommerceProvider
from orderbridge.providers.registry import get_provider_class
from tests.contract import CONTRACT, CONTRACT_SHA256, bigcommerce_order_post_errors
from tests.factories import delivery, order


def _provider(d):
    return BigCommerceProvider(destination=d.destination)


def _response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, request=None
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers.update(headers or {})
    r.reason = "reason"
    r.request = request
    return r


def _lookup_answer(d, status: int, body: bytes = b""):
    """The adapter's answer to a lookup response, with the request it sent attached."""
    req = _provider(d).build_lookup(d)
    prepared = requests.Request(req.method, req.url, params=req.params).prepare()
    return _provider(d).parse_lookup(_response(status, body, request=prepared))


def test_contract_file_is_the_recorded_copy():
    assert hashlib.sha256(CONTRACT.read_bytes()).hexdigest() == CONTRACT_SHA256


def test_registry_resolves_bigcommerce():
    assert get_provider_class("bigcommerce") is BigCommerceProvider


def test_create_request_field_by_field_and_valid_against_contract():
    d = delivery()
    req = _provider(d).build_create(d)
    assert req.method == "POST"
    assert req.url == "http://sandbox.invalid/bigcommerce/stores/abc123/v2/orders"
    body = req.json
    assert body["external_order_id"] == d.tracking_id
    assert "external_id" not in body  # read-only on BigCommerce now
    assert body["billing_address"] == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "street_1": "12 Analytical Row",
        "city": "London",
        "zip": "N1 9GU",
        "country_iso2": "GB",
        "email": "ada@example.com",
    }
    assert body["products"][0] == {"product_id": 111, "variant_id": 77, "quantity": 2}
    assert body["products"][1] == {
        "name": "Engraving",
        "quantity": 1,
        "price_inc_tax": 7.5,
        "price_ex_tax": 7.5,
    }
    assert body["customer_message"] == "Leave at the door"
    assert body["ip_address"] == "203.0.113.9"
    assert body["shipping_cost_ex_tax"] == body["shipping_cost_inc_tax"] == "4.95"
    assert body["default_currency_code"] == "USD"
    assert d.tracking_id in body["staff_notes"] and "SHOP-1001" in body["staff_notes"]
    assert bigcommerce_order_post_errors(body) == []


def test_ipv6_goes_to_its_own_field():
    d = delivery(order(buyer={"email": "a@example.com", "ip_address": "2001:db8::1"}))
    body = _provider(d).build_create(d).json
    assert body["ip_address_v6"] == "2001:db8::1" and "ip_address" not in body
    assert bigcommerce_order_post_errors(body) == []


def test_shipping_address_is_billing_when_only_shipping_given():
    o = order()
    o = o.model_copy(update={"shipping_address": o.billing_address, "billing_address": None})
    d = delivery(o)
    body = _provider(d).build_create(d).json
    assert body["billing_address"]["zip"] == "N1 9GU"
    assert body["shipping_addresses"][0]["street_1"] == "12 Analytical Row"
    assert bigcommerce_order_post_errors(body) == []


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"billing_address": None}, "BILLING_ADDRESS_REQUIRED"),
        ({"currency": "EUR", "shipping_total": "4.95"}, "CURRENCY_NOT_SUPPORTED"),
        ({"lines": [{"sku": "NOPE", "quantity": 1}]}, "UNKNOWN_SKU"),
        ({"lines": [{"name": "Custom", "quantity": 1}]}, "CUSTOM_PRODUCT_NEEDS_PRICE"),
    ],
)
def test_requests_bigcommerce_would_refuse_are_not_sent(changes, code):
    d = delivery(order(**changes))
    with pytest.raises(RequestRejectedError) as err:
        _provider(d).build_create(d)
    assert err.value.code == code
    if code == "UNKNOWN_SKU":
        assert "NOPE" in err.value.message


def test_custom_product_name_limit_250_both_sides():
    ok = delivery(order(lines=[{"name": "n" * 250, "quantity": 1, "unit_price": "1.00"}]))
    assert bigcommerce_order_post_errors(_provider(ok).build_create(ok).json) == []
    # the canonical model caps names at 255; 251..255 must be stopped by the adapter
    too_long = delivery(order(lines=[{"name": "n" * 251, "quantity": 1, "unit_price": "1.00"}]))
    with pytest.raises(RequestRejectedError) as err:
        _provider(too_long).build_create(too_long)
    assert err.value.code == "PROVIDER_LIMIT" and "products" in err.value.message


def test_missing_store_hash_is_a_configuration_failure():
    d = delivery(settings={})
    with pytest.raises(RequestRejectedError) as err:
        _provider(d).build_create(d)
    assert err.value.code == "DESTINATION_MISCONFIGURED"


def test_auth_header_and_missing_token():
    p = _provider(delivery())
    assert p.auth_headers({"access_token": "t0k"})["X-Auth-Token"] == "t0k"
    with pytest.raises(CredentialsError) as err:
        p.auth_headers({"client_id": "x"})
    assert "t0k" not in str(err.value)


def test_success_reads_order_id_and_rate_limit_headers():
    p = _provider(delivery())
    r = p.parse_create(
        _response(
            200,
            b'{"id": 118, "status": "Pending"}',
            {
                "X-Rate-Limit-Requests-Left": "149",
                "X-Rate-Limit-Requests-Quota": "150",
                "X-Rate-Limit-Time-Reset-Ms": "29000",
                "X-Rate-Limit-Time-Window-Ms": "30000",
            },
        )
    )
    assert r.kind is ResultKind.SUCCEEDED and r.provider_order_id == "118"
    assert r.rate_limit.remaining == 149 and r.rate_limit.quota == 150
    assert r.rate_limit.reset_seconds == 29 and r.rate_limit.window_seconds == 30


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ResultKind.PERMANENT),
        (422, ResultKind.PERMANENT),
        (401, ResultKind.AUTH),
        (429, ResultKind.RETRYABLE),
        (500, ResultKind.RETRYABLE),
        (503, ResultKind.RETRYABLE),
    ],
)
def test_error_array_classified(status, kind):
    p = _provider(delivery())
    r = p.parse_create(
        _response(
            status,
            b'[{"status": %d, "message": "The field products is invalid."}]' % status,
            {"X-Retry-After": "7"},
        )
    )
    assert r.kind is kind
    assert r.error_code == f"BIGCOMMERCE_{status}"
    assert r.error_message == "The field products is invalid."
    assert r.retry_after == 7


def test_2xx_without_id_is_an_unknown_result():
    r = _provider(delivery()).parse_create(_response(200, b"<html>"))
    assert r.kind is ResultKind.RETRYABLE and r.unknown_result


def test_lookup_204_is_not_found_and_200_is_found():
    d = delivery()
    p = _provider(d)
    req = p.build_lookup(d)
    assert req.method == "GET" and req.params == {"external_order_id": d.tracking_id}
    assert _lookup_answer(d, 204).kind is ResultKind.NOT_FOUND
    body = json.dumps([{"id": 120, "external_order_id": d.tracking_id}]).encode()
    found = _lookup_answer(d, 200, body)
    assert found.kind is ResultKind.SUCCEEDED and found.provider_order_id == "120"


def test_lookup_never_takes_an_unrelated_order():
    # external_order_id is filterable but neither unique nor immutable (v2 orders reference):
    # an answer whose first order is someone else's must not be recorded as ours
    d = _delivery_for_lookup()
    unrelated = {"id": 7, "external_order_id": "ob_someone_else"}
    blank = {"id": 8, "external_order_id": ""}
    ours = {"id": 120, "external_order_id": d.tracking_id}
    assert _lookup_answer(d, 200, json.dumps([unrelated, blank]).encode()).kind is ResultKind.NOT_FOUND
    found = _lookup_answer(d, 200, json.dumps([unrelated, ours]).encode())
    assert found.kind is ResultKind.SUCCEEDED and found.provider_order_id == "120"


def test_lookup_with_several_matches_is_parked_for_review():
    d = _delivery_for_lookup()
    two = [{"id": 120, "external_order_id": d.tracking_id}, {"id": 121, "external_order_id": d.tracking_id}]
    r = _lookup_answer(d, 200, json.dumps(two).encode())
    assert r.kind is ResultKind.REVIEW and r.error_code == "DUPLICATE_REFERENCE"
    assert "120" in r.error_message and "121" in r.error_message


def test_lookup_answer_that_cannot_be_checked_is_not_a_not_found():
    d = _delivery_for_lookup()
    p = _provider(d)
    # no request to read the reference back from: neither found nor not found
    assert p.parse_lookup(_response(200, b'[{"id": 120}]')).kind is ResultKind.RETRYABLE
    assert _lookup_answer(d, 200, b'{"id": 120}').kind is ResultKind.RETRYABLE
    assert _lookup_answer(d, 500, b"[]").kind is ResultKind.RETRYABLE


def _delivery_for_lookup():
    return delivery()


# --- money, currency, addresses ---------------------------------------------------------------------


def _body(settings=None, catalog=None, **changes):
    d = delivery(order(**changes), settings=settings, catalog=catalog)
    body = _provider(d).build_create(d).json
    assert bigcommerce_order_post_errors(body) == [], body
    return body


def test_currency_is_always_sent_and_must_be_enabled():
    assert _body()["default_currency_code"] == "USD"
    settings = {"store_hash": "abc123", "currencies": ["USD", "JPY"]}
    body = _body(
        settings,
        currency="JPY",
        lines=[{"name": "Tea", "quantity": 1, "unit_price": "59000"}],
        shipping_total="400",
    )
    assert body["default_currency_code"] == "JPY" and body["products"][0]["price_ex_tax"] == 59000
    assert body["shipping_cost_inc_tax"] == "400"
    d = delivery(order(currency="KWD", shipping_total="1.250"), settings=settings)
    with pytest.raises(RequestRejectedError) as err:
        _provider(d).build_create(d)
    assert err.value.code == "CURRENCY_NOT_SUPPORTED" and "KWD" in err.value.message


def test_lines_carry_the_price_paid_after_their_discount_the_order_discount_is_discount_amount():
    body = _body(
        lines=[
            {"sku": "TEE-BLUE-M", "quantity": 2, "unit_price": "204.97", "discount": "5.00"},
            {"name": "Engraving", "variant_title": "Gold", "quantity": 1, "unit_price": "7.50"},
        ],
        order_discount="2.50",
        shipping_total="0",
        coupon="TENOFF",
    )
    assert body["products"][0] == {
        "product_id": 111,
        "variant_id": 77,
        "quantity": 2,
        "price_ex_tax": 202.47,  # (2 x 204.97 - 5.00) / 2: the line's discount is in its price
        "price_inc_tax": 202.47,
    }
    assert body["products"][1]["name"] == "Engraving - Gold"
    assert body["discount_amount"] == "2.50"
    assert "subtotal_ex_tax" not in body and "total_inc_tax" not in body  # the units add up exactly
    assert "coupon TENOFF" in body["staff_notes"]


def test_tax_exclusive_and_inclusive_prices_and_shipping():
    ex = _body(
        lines=[{"name": "Mug", "quantity": 2, "unit_price": "10.00", "tax": "1.60"}],
        shipping_total="5.00",
        shipping_tax="0.40",
    )
    assert ex["products"][0]["price_ex_tax"] == 10 and ex["products"][0]["price_inc_tax"] == 10.8
    assert (ex["shipping_cost_ex_tax"], ex["shipping_cost_inc_tax"]) == ("5.00", "5.40")
    inc = _body(
        lines=[{"name": "Mug", "quantity": 2, "unit_price": "10.00", "tax": "1.60"}],
        shipping_total="5.00",
        shipping_tax="0.40",
        taxes_included=True,
    )
    assert inc["products"][0]["price_ex_tax"] == 9.2 and inc["products"][0]["price_inc_tax"] == 10
    assert (inc["shipping_cost_ex_tax"], inc["shipping_cost_inc_tax"]) == ("4.60", "5.00")


def test_tax_that_does_not_split_over_units_uses_the_subtotal_override():
    body = _body(
        lines=[{"name": "Pen", "quantity": 3, "unit_price": "1.00", "tax": "0.10"}],
        shipping_total=None,
        total_tax="0.25",  # 0.15 of it stated for the order only
    )
    # 3.10 over 3 units in whole cents: 1 x 1.04 + 2 x 1.03 (the same product twice)
    assert [(p["quantity"], p["price_ex_tax"], p["price_inc_tax"]) for p in body["products"]] == [
        (1, 1, 1.04),
        (2, 1, 1.03),
    ]
    assert (body["subtotal_ex_tax"], body["subtotal_inc_tax"]) == ("3.00", "3.25")
    assert "shipping_cost_ex_tax" not in body


def test_unpriced_catalog_lines_with_a_stated_total_override_the_total():
    body = _body(lines=[{"sku": "TEE-BLUE-M", "quantity": 2}], shipping_total=None, total="30.00")
    assert body["products"][0] == {"product_id": 111, "variant_id": 77, "quantity": 2}
    assert (body["total_ex_tax"], body["total_inc_tax"]) == ("30.00", "30.00")


def test_options_catalog_mapped_to_product_options_the_rest_in_staff_notes():
    catalog = {"TEE-BLUE-M": {"product_id": 111, "variant_id": 77, "options": {"Engraving": 301}}}
    body = _body(
        catalog=catalog,
        lines=[
            {
                "sku": "TEE-BLUE-M",
                "quantity": 1,
                "unit_price": "15.00",
                "options": {"Engraving": "Happy Birthday", "Gift note": "For Al", "Empty": ""},
            },
            {"name": "Card", "quantity": 1, "unit_price": "1.00", "options": {"Message": "Hi", "Blank": " "}},
        ],
    )
    assert body["products"][0]["product_options"] == [{"id": 301, "value": "Happy Birthday"}]
    notes = body["staff_notes"]
    assert "line 1 (TEE-BLUE-M): Gift note: For Al" in notes and "line 2 (Card): Message: Hi" in notes
    assert "Empty" not in notes and "Blank" not in notes and "None" not in notes


def test_hong_kong_needs_no_zip_but_the_uk_does():
    hk = {"address1": "1 Sample Street", "city": "Kowloon", "country": "HK", "first_name": "Alex"}
    body = _body(billing_address=hk, buyer={"phone": "+85255500100"})
    assert body["billing_address"]["zip"] == "" and body["billing_address"]["country_iso2"] == "HK"
    assert "email" not in body["billing_address"]  # a phone-only buyer: BigCommerce needs no email
    d = delivery(order(billing_address={**hk, "country": "GB", "city": "London"}))
    with pytest.raises(RequestRejectedError) as err:
        _provider(d).build_create(d)
    assert err.value.code == "ZIP_REQUIRED" and "GB" in err.value.message


def test_names_come_from_the_buyer_when_the_address_has_none():
    address = {"address1": "1 Sample Street", "city": "Louisville", "zip": "40202", "country": "US"}
    body = _body(
        billing_address=address, buyer={"email": "a@example.com", "first_name": "A", "last_name": "B"}
    )
    assert (body["billing_address"]["first_name"], body["billing_address"]["last_name"]) == ("A", "B")


def test_money_is_exact_on_the_wire():
    from decimal import Decimal

    body = _body(
        lines=[{"name": "Gold", "quantity": 1, "unit_price": "123456789012.34"}], shipping_total="0.10"
    )
    assert Decimal(repr(body["products"][0]["price_ex_tax"])) == Decimal("123456789012.34")
    assert body["shipping_cost_inc_tax"] == "0.10" and isinstance(body["shipping_cost_inc_tax"], str)


def test_contract_states_the_described_rules_too():
    d = delivery()
    body = _provider(d).build_create(d).json
    assert bigcommerce_order_post_errors(body) == []
    unpaired = {**body, "subtotal_ex_tax": "1.00"}
    assert any("subtotal_ex_tax/subtotal_inc_tax" in e for e in bigcommerce_order_post_errors(unpaired))
    negative = {**body, "discount_amount": "-1.00"}
    assert any("discount_amount" in e for e in bigcommerce_order_post_errors(negative))
    as_float = {**body, "shipping_cost_ex_tax": 4.95}  # the OAS types order-level money as strings
    assert any("shipping_cost_ex_tax" in e for e in bigcommerce_order_post_errors(as_float))
