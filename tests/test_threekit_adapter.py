"""The Threekit adapter in isolation: request building against Threekit's limits, answers, lookup."""

import json

import pytest
import requests

from orderbridge.exceptions import CredentialsError, RequestRejectedError
from orderbridge.providers.base import ResultKind
from orderbridge.providers.registry import get_provider_class
from orderbridge.providers.threekit import ThreekitProvider
from tests.factories import delivery, order

CONFIG_BLUE = "0b5a9a57-7f0e-4d8e-9d0a-2f6e3c1b7a11"
CONFIG_MUG = "6f1d2c3b-4a5e-4f60-8b7c-9d0e1f2a3b4c"
ORDER_ID = "c0ffee00-1234-4abc-9def-0123456789ab"
CATALOG = {"TEE-BLUE-M": {"configurationId": CONFIG_BLUE}, "MUG-001": {"configuration_id": CONFIG_MUG}}
SETTINGS = {"org_id": "org-42", "store_name": "Ada's Shop"}


def _order(**changes):
    base = {
        "lines": [
            {"sku": "TEE-BLUE-M", "quantity": 2, "options": {"Colour": "Blue", "Size": "M"}},
            {"sku": "MUG-001", "quantity": 1},
        ],
        "metadata": {"campaign": "spring"},
    }
    base.update(changes)
    return order(**base)


def _delivery(order_=None, settings=None, catalog=None):
    return delivery(
        order_ or _order(),
        provider="threekit",
        settings=SETTINGS if settings is None else settings,
        catalog=CATALOG if catalog is None else catalog,
    )


def _provider(d):
    return ThreekitProvider(destination=d.destination)


def _build(d):
    return _provider(d).build_create(d)


def _rejected(d) -> RequestRejectedError:
    with pytest.raises(RequestRejectedError) as err:
        _build(d)
    return err.value


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


def test_registry_resolves_threekit():
    assert get_provider_class("threekit") is ThreekitProvider


def test_create_request_field_by_field():
    d = _delivery()
    req = _build(d)
    assert req.method == "POST"
    assert req.url == "http://sandbox.invalid/bigcommerce/api/orders"
    assert req.json == {
        "name": f"orderbridge {d.tracking_id}",
        "orgId": "org-42",
        "platform": {"id": d.tracking_id, "platform": "orderbridge", "storeName": "Ada's Shop"},
        "metadata": {
            "campaign": "spring",
            # the order states no prices (no total): what is known of the money still goes
            "currency": "USD",
            "shipping": "4.95",
            "tax": "0",
            "taxes_included": "false",
            "source_order_id": "SHOP-1001",
            "orderbridge_tracking_id": d.tracking_id,
        },
        "cart": [
            {
                "configurationId": CONFIG_BLUE,
                "count": 2,
                "metadata": {"sku": "TEE-BLUE-M", "properties": {"Colour": "Blue", "Size": "M"}},
            },
            {"configurationId": CONFIG_MUG, "count": 1, "metadata": {"sku": "MUG-001"}},
        ],
        "status": "New",
    }
    assert "items" not in req.json  # deprecated on Threekit


def test_settings_shape_name_platform_customer_status_derivative():
    settings = {
        "name_template": "{source} order {external_order_id}",
        "platform": "shopify",
        "customer_id": "cust-7",
        "status": "In Progress",
        "derivative": {"Finish": "Matte"},
    }
    d = _delivery(settings=settings)
    body = _build(d).json
    assert body["name"] == "test order SHOP-1001"
    assert body["platform"] == {"id": d.tracking_id, "platform": "shopify"}
    assert body["customerId"] == "cust-7" and "orgId" not in body
    assert body["status"] == "In Progress" and body["derivative"] == {"Finish": "Matte"}


@pytest.mark.parametrize("status", ["List", "In Cart", "New", "In Progress", "Complete"])
def test_every_status_in_the_enum_is_sent_explicitly(status):
    assert _build(_delivery(settings={"status": status})).json["status"] == status


@pytest.mark.parametrize("status", ["Shipped", "new", ""])
def test_status_outside_the_enum_is_refused(status):
    err = _rejected(_delivery(settings={"status": status}))
    assert err.code == "DESTINATION_MISCONFIGURED" and "status" in err.message


def test_name_255_passes_256_is_refused():
    ok = _delivery(settings={"name_template": "n" * 255})
    assert _build(ok).json["name"] == "n" * 255
    err = _rejected(_delivery(settings={"name_template": "n" * 256}))
    assert err.code == "PROVIDER_LIMIT" and "name" in err.message


def test_count_1_passes_0_is_refused():
    o = _order(lines=[{"sku": "MUG-001", "quantity": 1}])
    assert _build(_delivery(o)).json["cart"] == [
        {"configurationId": CONFIG_MUG, "count": 1, "metadata": {"sku": "MUG-001"}}
    ]
    # the canonical model never holds 0; set it without validation to reach the adapter's own check
    zero = o.model_copy(update={"lines": [o.lines[0].model_copy(update={"quantity": 0})]})
    err = _rejected(_delivery(zero))
    assert err.code == "PROVIDER_LIMIT" and "cart.0.count" in err.message


def test_configuration_id_must_be_a_uuid():
    err = _rejected(_delivery(catalog={**CATALOG, "TEE-BLUE-M": {"configurationId": "blue-tee"}}))
    assert err.code == "DESTINATION_MISCONFIGURED" and "configurationId" in err.message


def test_unknown_sku_names_the_sku():
    err = _rejected(_delivery(_order(lines=[{"sku": "NOPE-9", "quantity": 1}])))
    assert err.code == "UNKNOWN_SKU" and "NOPE-9" in err.message


def test_line_without_sku_cannot_be_a_configuration():
    err = _rejected(_delivery(_order(lines=[{"name": "Engraving", "quantity": 1, "unit_price": "7.50"}])))
    assert err.code == "CUSTOM_LINE_UNSUPPORTED" and "Engraving" in err.message


@pytest.mark.parametrize(
    ("settings", "catalog"),
    [
        ({"name_template": "{order_number}"}, None),
        ({"derivative": "Matte"}, None),
        (SETTINGS, {"TEE-BLUE-M": {"product_id": 1}, "MUG-001": {"configurationId": CONFIG_MUG}}),
    ],
)
def test_misconfigured_destination_is_refused(settings, catalog):
    assert _rejected(_delivery(settings=settings, catalog=catalog)).code == "DESTINATION_MISCONFIGURED"


def test_auth_header_and_missing_token():
    p = _provider(_delivery())
    assert p.auth_headers({"token": "tk_secret"})["Authorization"] == "Bearer tk_secret"
    with pytest.raises(CredentialsError) as err:
        p.auth_headers({"public_token": "tk_secret"})
    assert "token" in str(err.value) and "tk_secret" not in str(err.value)


# --- answers ---------------------------------------------------------------------------------------


def test_success_reads_id_and_short_id():
    body = json.dumps({"id": ORDER_ID, "shortId": "M3kT9xQ", "status": "New", "cart": []}).encode()
    r = _provider(_delivery()).parse_create(_response(201, body))
    assert r.kind is ResultKind.SUCCEEDED
    assert r.provider_order_id == ORDER_ID and r.provider_reference == "M3kT9xQ"


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            400,
            b'{"message": "\\"cart[0].count\\" must be >= 1"}',
            ResultKind.PERMANENT,
            '"cart[0].count" must be >= 1',
        ),
        (401, b'{"error": "Unauthorized"}', ResultKind.AUTH, "Unauthorized"),
        (
            403,
            b'{"message": "Token not allowed for this org"}',
            ResultKind.AUTH,
            "Token not allowed for this org",
        ),
        (404, b'{"error": {"message": "Not found"}}', ResultKind.PERMANENT, "Not found"),
        (429, b'{"message": "Too many requests"}', ResultKind.RETRYABLE, "Too many requests"),
        (500, b"<html>oops</html>", ResultKind.RETRYABLE, "reason"),
        (503, b"", ResultKind.RETRYABLE, "reason"),
    ],
)
def test_errors_classified_by_status(status, body, kind, message):
    r = _provider(_delivery()).parse_create(_response(status, body, {"Retry-After": "3"}))
    assert r.kind is kind and r.error_code == f"THREEKIT_{status}"
    assert r.error_message == message and r.retry_after == 3


@pytest.mark.parametrize("body", [b"<html>", b'{"shortId": "abc"}', b"[]"])
def test_2xx_without_id_is_an_unknown_result(body):
    r = _provider(_delivery()).parse_create(_response(200, body))
    assert r.kind is ResultKind.RETRYABLE and r.unknown_result


# --- lookup ----------------------------------------------------------------------------------------


def test_lookup_asks_by_the_reference_the_create_sent():
    d = _delivery()
    p = _provider(d)
    assert ThreekitProvider.supports_lookup is True
    req = p.build_lookup(d)
    assert req.method == "GET" and req.url == "http://sandbox.invalid/bigcommerce/api/orders"
    # exactly the object the create sent: Threekit documents only "retrieve orders by platform
    # data", and under whole-object matching anything less misses every order
    sent = _build(d).json["platform"]
    assert json.loads(req.params["platform"]) == sent
    assert sent["id"] == d.tracking_id and set(sent) == {"id", "platform", "storeName"}
    assert req.params["orgId"] == "org-42"
    # what goes over the wire is the URL-encoded JSON
    prepared = requests.Request(req.method, req.url, params=req.params).prepare()
    assert "platform=%7B%22id%22%3A%22" + d.tracking_id in prepared.url


def _lookup_answer(d, status, body):
    req = _provider(d).build_lookup(d)
    prepared = requests.Request(req.method, req.url, params=req.params).prepare()
    return _provider(d).parse_lookup(_response(status, json.dumps(body).encode(), request=prepared))


def test_lookup_found_in_a_list_or_an_orders_object():
    d = _delivery()
    order_ = {
        "id": ORDER_ID,
        "shortId": "M3kT9xQ",
        "platform": _build(d).json["platform"],
    }
    for body in ([order_], {"orders": [order_], "count": 1}):
        found = _lookup_answer(d, 200, body)
        assert found.kind is ResultKind.SUCCEEDED
        assert found.provider_order_id == ORDER_ID and found.provider_reference == "M3kT9xQ"


def test_lookup_empty_is_not_found():
    d = _delivery()
    assert _lookup_answer(d, 200, []).kind is ResultKind.NOT_FOUND
    assert _lookup_answer(d, 200, {"orders": [], "count": 0}).kind is ResultKind.NOT_FOUND


def test_lookup_ignores_orders_of_other_deliveries():
    # a server that ignored the filter must not make another delivery's order count as ours
    d = _delivery()
    other = {
        "id": ORDER_ID,
        "shortId": "zzz",
        "platform": {**_build(d).json["platform"], "id": "ob_someone_else"},
    }
    assert _lookup_answer(d, 200, [other]).kind is ResultKind.NOT_FOUND
    # same id, another object (a partial match a lenient server might answer): not ours either
    partial = {"id": ORDER_ID, "shortId": "zzz", "platform": {"id": d.tracking_id}}
    assert _lookup_answer(d, 200, [partial]).kind is ResultKind.NOT_FOUND


def test_lookup_answer_that_cannot_be_checked_is_never_not_found():
    d = _delivery()
    # orders without a platform object: ours may be among them -> a person checks
    bare = {"id": ORDER_ID, "shortId": "zzz"}
    r = _lookup_answer(d, 200, [bare])
    assert r.kind is ResultKind.REVIEW and r.error_code == "LOOKUP_UNVERIFIABLE"
    # no request to read what was asked: retried, not taken as missing
    answer = _response(200, json.dumps([bare]).encode())
    assert _provider(d).parse_lookup(answer).kind is ResultKind.RETRYABLE


def test_lookup_errors_are_not_a_not_found():
    d = _delivery()
    assert _lookup_answer(d, 500, {"message": "down"}).kind is ResultKind.RETRYABLE
    assert _lookup_answer(d, 401, {"message": "no"}).kind is ResultKind.AUTH
    bad = _lookup_answer(d, 200, {"unexpected": True})
    assert bad.kind is ResultKind.RETRYABLE
