"""The BigCommerce adapter in isolation: request building, answer reading, the contract."""

import hashlib

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


def _response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers.update(headers or {})
    r.reason = "reason"
    return r


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
        ({"billing_address": None}, "MISSING_BILLING_ADDRESS"),
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
    assert p.parse_lookup(_response(204)).kind is ResultKind.NOT_FOUND
    found = p.parse_lookup(_response(200, b'[{"id": 120}]'))
    assert found.kind is ResultKind.SUCCEEDED and found.provider_order_id == "120"
