"""The Komerza sandbox over real HTTP: the wrapper, every limit from both sides, auth, lookup, checkout
page, rate limits, every fault mode, and the real Komerza adapter end to end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from orderbridge.models.config import Destination
from orderbridge.providers.base import ResultKind
from orderbridge.providers.komerza import REFERENCE_KEY, KomerzaProvider
from orderbridge_sandboxes import SandboxConfig, SandboxServer, serve
from tests.factories import delivery, order

STORE = "0b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e5f"
GATED_STORE = "1c8e7d2f-5d2b-4a3f-8e4b-6b2c3d4e5f60"
TOKEN = "kz-test-key-123"
GATED_TOKEN = "kz-gated-key-456"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
TEE = "6f1c2a3b-4d5e-4f60-8a7b-1c2d3e4f5a6b"
TEE_M = "7a2b3c4d-5e6f-4a70-9b8c-2d3e4f5a6b7c"
TEE_L = "8b3c4d5e-6f70-4b81-8c9d-3e4f5a6b7c8d"
MUG = "9c4d5e6f-7081-4c92-9dae-4f5a6b7c8d9e"
MUG_STD = "ad5e6f70-8192-4da3-8ebf-5a6b7c8d9eaf"
MISSING = "00000000-0000-4000-8000-000000000000"
COUPON_32 = "C" * 32
REGISTRY = {"komerza": "orderbridge_sandboxes.komerza:KomerzaSandbox"}

CONFIG = SandboxConfig.model_validate(
    {
        "_comment": "comments are ignored",
        "komerza": {
            "accounts": {
                STORE: {
                    "token": TOKEN,
                    "name": "Test Shop",
                    "catalog": {
                        TEE: {
                            "name": "Tee",
                            "variants": {TEE_M: {"price": "12.50", "name": "Blue M"}, TEE_L: 14},
                        },
                        MUG: {MUG_STD: 8},
                    },
                    "coupons": {"SPRING10": {"percentage": 10}, "FIVEOFF": {"amount": 5}, COUPON_32: {}},
                },
                GATED_STORE: {"token": GATED_TOKEN, "gateways": ["stripe", "PayPal"], "currency_code": "EUR"},
            }
        },
    }
)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = serve(CONFIG, port=0, registry=REGISTRY)
    yield srv
    srv.shutdown()


@pytest.fixture(autouse=True)
def _clean(server: SandboxServer) -> Iterator[None]:
    requests.post(f"{server.url}/_sandbox/reset", timeout=5).raise_for_status()
    yield


def orders_url(server: SandboxServer, store: str = STORE) -> str:
    return f"{server.url}/komerza/stores/{store}/orders"


def items_order(**changes: Any) -> dict[str, Any]:
    body = {
        "emailAddress": "ada@example.com",
        "gateway": "stripe",
        "items": [{"productId": TEE, "variantId": TEE_M, "quantity": 2}],
        "metadata": {"orderbridge_tracking_id": "trk-1"},
    }
    body.update(changes)
    return body


def cost_order(cost: Any = 42.5, **changes: Any) -> dict[str, Any]:
    return {"emailAddress": "ada@example.com", "gateway": "stripe", "cost": cost, **changes}


def post(
    server: SandboxServer,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    store: str = STORE,
    **kw: Any,
) -> requests.Response:
    kw.setdefault("timeout", 5)
    return requests.post(
        orders_url(server, store), json=body, headers=AUTH if headers is None else headers, **kw
    )


def sandbox_orders(server: SandboxServer) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/_sandbox/komerza/orders", timeout=5)
    r.raise_for_status()
    return r.json()


def set_fault(server: SandboxServer, **fault: Any) -> None:
    requests.post(f"{server.url}/_sandbox/komerza/faults", json=fault, timeout=5).raise_for_status()


def stats(server: SandboxServer) -> dict[str, Any]:
    return requests.get(f"{server.url}/_sandbox/komerza/stats", timeout=5).json()


def assert_wrapper_error(r: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["success"] is False and body["code"] == code and body["data"] is None
    assert isinstance(body["message"], str) and body["message"]
    return body


# --- creating orders ------------------------------------------------------------------------------


def test_items_order_answers_the_200_wrapper_with_the_order(server):
    body = items_order(countryCode="gb", returnUrl="https://shop.example/thanks", ipAddress="203.0.113.9")
    r = post(server, body)
    assert r.status_code == 200, r.text
    wrapped = r.json()
    assert list(wrapped) == ["success", "message", "code", "data"]
    assert wrapped["success"] is True and wrapped["code"] is None and wrapped["message"] == "Order created"
    order = wrapped["data"]
    assert len(order["id"]) == 36 and order["dateCreated"].endswith("Z")
    assert order["status"] == "Pending" and order["amountPaid"] == 0 and order["source"] == "api"
    assert order["amount"] == 25.0 and order["currencyCode"] == "USD" and order["gateway"] == "stripe"
    [line] = order["items"]
    assert (line["productId"], line["variantId"], line["quantity"]) == (TEE, TEE_M, 2)
    assert (line["productName"], line["variantName"], line["amount"], line["lineTotal"]) == (
        "Tee",
        "Blue M",
        12.5,
        25.0,
    )
    assert order["customer"]["emailAddress"] == "ada@example.com"
    assert order["customer"]["countryCode"] == "GB"
    assert order["metadata"] == {"orderbridge_tracking_id": "trk-1"}
    assert order["returnUrl"] == "https://shop.example/thanks"
    assert order["coupon"] is None and order["deliveredItems"] == []
    assert "Retry-After" not in r.headers

    [kept] = sandbox_orders(server)
    assert kept["request"] == body and kept["order"] == order and kept["account"] == STORE
    assert kept["headers"]["Authorization"] == "<redacted>"
    assert TOKEN not in str(kept)


def test_cost_order_ignores_items_and_charges_the_cost(server):
    r = post(server, cost_order("42.50", items=[{"productId": "junk", "quantity": 0}]))
    assert r.status_code == 200, r.text
    order = r.json()["data"]
    assert order["items"] == [] and order["amount"] == 42.5


def test_prices_from_the_catalog_and_coupons(server):
    body = items_order(
        items=[
            {"productId": TEE, "variantId": TEE_L, "quantity": 1},
            {"productId": MUG.upper(), "variantId": MUG_STD, "quantity": "3"},
        ],
        couponCode="spring10",
    )
    order = post(server, body).json()["data"]
    assert [i["lineTotal"] for i in order["items"]] == [14.0, 24.0]
    assert order["amount"] == 34.2
    assert order["coupon"]["code"] == "SPRING10" and order["coupon"]["netDecrease"] == 3.8
    assert order["coupon"]["percentageDecrease"] == 10
    fixed = post(server, cost_order(3, couponCode="FIVEOFF")).json()["data"]
    assert fixed["amount"] == 0 and fixed["coupon"]["netDecrease"] == 3


def test_property_names_are_case_insensitive_and_unknown_ones_ignored(server):
    body = {
        "EmailAddress": "ada@example.com",
        "GATEWAY": "stripe",
        "Items": [{"ProductId": TEE, "variantid": TEE_M, "Quantity": 1}],
        "paymentMethod": "card",
        "somethingElse": {"nested": True},
    }
    r = post(server, body)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["amount"] == 12.5


# --- validation -----------------------------------------------------------------------------------


def email_of(length: int) -> str:
    domain = "@example.com"
    return "a" * (length - len(domain)) + domain


def url_of(length: int) -> str:
    head = "https://shop.example/"
    return head + "a" * (length - len(head))


def without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def drop(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != key}

    return drop


def meta(n: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(n)}


#: case -> (body, the field refused or None when the body is valid)
LIMITS: dict[str, tuple[dict[str, Any], str | None]] = {
    "emailAddress 256": (items_order(emailAddress=email_of(256)), None),
    "emailAddress 257": (items_order(emailAddress=email_of(257)), "emailAddress"),
    "emailAddress missing": (without("emailAddress")(items_order()), "emailAddress"),
    "emailAddress not an email": (items_order(emailAddress="ada.example.com"), "emailAddress"),
    "gateway empty": (items_order(gateway=""), "gateway"),
    "gateway blank": (items_order(gateway="   "), "gateway"),
    "gateway 256": (items_order(gateway="g" * 256), None),
    "gateway 257": (items_order(gateway="g" * 257), "gateway"),
    "gateway missing": (without("gateway")(items_order()), "gateway"),
    "cost 0.01": (cost_order(0.01), None),
    "cost 1000000": (cost_order(1000000), None),
    "cost 0": (cost_order(0), "cost"),
    "cost 1000000.01": (cost_order(1000000.01), "cost"),
    "cost not a number": (cost_order("lots"), "cost"),
    "couponCode 32": (items_order(couponCode=COUPON_32), None),
    "couponCode 33": (items_order(couponCode=COUPON_32 + "C"), "couponCode"),
    "affiliateCode 256": (items_order(affiliateCode="a" * 256), None),
    "affiliateCode 257": (items_order(affiliateCode="a" * 257), "affiliateCode"),
    "metadata 20 keys": (items_order(metadata=meta(20)), None),
    "metadata 21 keys": (items_order(metadata=meta(21)), "metadata"),
    "metadata key 40": (items_order(metadata={"k" * 40: "v"}), None),
    "metadata key 41": (items_order(metadata={"k" * 41: "v"}), "metadata"),
    "metadata value 500": (items_order(metadata={"note": "v" * 500}), None),
    "metadata value 501": (items_order(metadata={"note": "v" * 501}), "metadata.note"),
    "metadata value not a string": (items_order(metadata={"n": 5}), "metadata.n"),
    "returnUrl 2048": (items_order(returnUrl=url_of(2048)), None),
    "returnUrl 2049": (items_order(returnUrl=url_of(2049)), "returnUrl"),
    "returnUrl not a URL": (items_order(returnUrl="not a url"), "returnUrl"),
    "returnUrl relative": (items_order(returnUrl="/thanks"), "returnUrl"),
    "ipAddress 45": (items_order(ipAddress="1" * 45), None),
    "ipAddress 46": (items_order(ipAddress="1" * 46), "ipAddress"),
    "userAgent 512": (items_order(userAgent="u" * 512), None),
    "userAgent 513": (items_order(userAgent="u" * 513), "userAgent"),
    "countryCode 2": (items_order(countryCode="FR"), None),
    "countryCode 3": (items_order(countryCode="FRA"), "countryCode"),
    "countryCode 1": (items_order(countryCode="F"), "countryCode"),
    "sendReceipt false": (items_order(sendReceipt=False), None),
    "sendReceipt not a boolean": (items_order(sendReceipt="yes"), "sendReceipt"),
    "items and cost missing": (without("items")(items_order()), "items"),
    "items empty": (items_order(items=[]), "items"),
    "quantity 0": (
        items_order(items=[{"productId": TEE, "variantId": TEE_M, "quantity": 0}]),
        "items[0].quantity",
    ),
    "quantity not an integer": (
        items_order(items=[{"productId": TEE, "variantId": TEE_M, "quantity": 1.5}]),
        "items[0].quantity",
    ),
    "productId not a uuid": (
        items_order(items=[{"productId": "111", "variantId": TEE_M, "quantity": 1}]),
        "items[0].productId",
    ),
    "variantId missing": (items_order(items=[{"productId": TEE, "quantity": 1}]), "items[0].variantId"),
    "unknown coupon": (items_order(couponCode="NOPE"), "couponCode"),
}


@pytest.mark.parametrize("case", list(LIMITS))
def test_each_limit_from_each_side(server, case):
    body, refused = LIMITS[case]
    r = post(server, body)
    if refused is None:
        assert r.status_code == 200 and r.json()["success"] is True, r.text
        assert len(sandbox_orders(server)) == 1
        return
    error = assert_wrapper_error(r, 400, "ValidationError")
    assert refused in error["invalidFields"] and error["errors"][refused]
    assert refused in error["message"]
    assert sandbox_orders(server) == []


def test_every_problem_is_listed_at_once(server):
    body = {"emailAddress": "x" * 300, "gateway": "", "items": [], "countryCode": "GBR"}
    error = assert_wrapper_error(post(server, body), 400, "ValidationError")
    assert error["invalidFields"] == ["emailAddress", "gateway", "items", "countryCode"]
    assert error["message"] == (
        "The request contains invalid parameters: emailAddress, gateway, items, countryCode."
    )


def test_unknown_product_or_variant_is_404_naming_the_item(server):
    body = items_order(
        items=[
            {"productId": MISSING, "variantId": TEE_M, "quantity": 1},
            {"productId": TEE, "variantId": MUG_STD, "quantity": 1},
        ]
    )
    error = assert_wrapper_error(post(server, body), 404, "NotFound")
    assert error["invalidFields"] == ["items[0].productId", "items[1].variantId"]
    assert MISSING in error["errors"]["items[0].productId"][0]
    assert "items[0].productId" in error["message"]
    assert sandbox_orders(server) == []


def test_gateway_must_be_one_the_store_offers(server):
    headers = {"Authorization": f"Bearer {GATED_TOKEN}"}
    ok = post(server, cost_order(10, gateway="paypal"), headers=headers, store=GATED_STORE)
    assert ok.status_code == 200 and ok.json()["data"]["gateway"] == "PayPal"
    assert ok.json()["data"]["currencyCode"] == "EUR"
    refused = post(server, cost_order(10, gateway="bitcoin"), headers=headers, store=GATED_STORE)
    error = assert_wrapper_error(refused, 400, "ValidationError")
    assert error["invalidFields"] == ["gateway"] and "bitcoin" in error["errors"]["gateway"][0]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [("", "non-empty"), ("{not json", "not valid JSON"), ("[]", "JSON object"), ('{"cost": NaN}', "NaN")],
)
def test_bodies_that_are_not_a_json_object(server, data, fragment):
    r = requests.post(
        orders_url(server), data=data, headers={**AUTH, "Content-Type": "application/json"}, timeout=5
    )
    error = assert_wrapper_error(r, 400, "ValidationError")
    assert fragment in error["errors"]["$"][0]


# --- auth, store and content type -----------------------------------------------------------------


def test_auth_store_and_content_type(server):
    missing = assert_wrapper_error(post(server, items_order(), headers={}), 401, "BadToken")
    assert "Authorization" in missing["message"]
    assert_wrapper_error(post(server, items_order(), headers={"Authorization": TOKEN}), 401, "BadToken")
    assert_wrapper_error(
        post(server, items_order(), headers={"Authorization": "Bearer wrong"}), 401, "BadToken"
    )
    # a valid key of another store: authenticated, not allowed here
    other = {"Authorization": f"Bearer {GATED_TOKEN}"}
    assert_wrapper_error(post(server, items_order(), headers=other), 403, "AccessDenied")
    assert_wrapper_error(post(server, items_order(), store=MISSING), 404, "NotFound")
    r = requests.post(
        orders_url(server), data="emailAddress=a", headers={**AUTH, "Content-Type": "text/plain"}, timeout=5
    )
    assert_wrapper_error(r, 415, "UnsupportedRequest")
    for media in ("text/json", "application/problem+json; charset=utf-8"):
        r = requests.post(
            orders_url(server), data='{"cost": 1}', headers={**AUTH, "Content-Type": media}, timeout=5
        )
        assert_wrapper_error(r, 400, "ValidationError")  # read as JSON: emailAddress is missing
    assert sandbox_orders(server) == []
    unknown_route = requests.get(f"{server.url}/komerza/nowhere", headers=AUTH, timeout=5)
    assert_wrapper_error(unknown_route, 404, "NotFound")


# --- lookup and checkout --------------------------------------------------------------------------


def test_get_order_by_id_and_only_by_id(server):
    order = post(server, items_order(affiliateCode="ada-ref", userAgent="Mozilla/5.0")).json()["data"]
    r = requests.get(f"{orders_url(server)}/{order['id']}", headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    wrapped = r.json()
    assert wrapped["success"] is True and wrapped["code"] is None
    data = wrapped["data"]
    assert data["storeId"] == STORE and data["storeName"] == "Test Shop" and data["logs"] == []
    assert {k: data["order"][k] for k in order} == order
    assert data["order"]["userAgent"] == "Mozilla/5.0" and data["order"]["affiliateCode"] == "ada-ref"
    assert data["order"]["sendReceipt"] is True

    unknown = requests.get(f"{orders_url(server)}/{MISSING}", headers=AUTH, timeout=5)
    assert_wrapper_error(unknown, 404, "NotFound")
    malformed = requests.get(f"{orders_url(server)}/not-a-uuid", headers=AUTH, timeout=5)
    assert assert_wrapper_error(malformed, 400, "ValidationError")["invalidFields"] == ["orderId"]
    other = {"Authorization": f"Bearer {GATED_TOKEN}"}
    in_other_store = requests.get(
        f"{orders_url(server, GATED_STORE)}/{order['id']}", headers=other, timeout=5
    )
    assert_wrapper_error(in_other_store, 404, "NotFound")
    # the list is no lookup by metadata: `metadata` is no filter, and a PageOrder carries none
    listing = requests.get(orders_url(server), headers=AUTH, params={"metadata": "trk-1"}, timeout=5)
    assert listing.status_code == 200 and listing.json()["success"] is True
    assert [o["id"] for o in listing.json()["data"]] == [order["id"]]
    assert "metadata" not in listing.json()["data"][0]


def test_checkout_page_shows_the_amount(server):
    order = post(
        server, items_order(couponCode="FIVEOFF", returnUrl="https://shop.example/t?a=1&b=2")
    ).json()["data"]
    page = requests.get(f"{server.url}/komerza/checkout/{order['id']}", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<title>Komerza sandbox checkout</title>" in page.text
    assert '<strong id="amount">20.00 USD</strong>' in page.text
    assert order["id"] in page.text and "Test Shop" in page.text
    assert 'href="https://shop.example/t?a=1&amp;b=2"' in page.text
    missing = requests.get(f"{server.url}/komerza/checkout/{MISSING}", timeout=5)
    assert missing.status_code == 404 and "Komerza sandbox checkout" in missing.text


# --- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_per_store_then_429_with_retry_after(server):
    default = requests.get(f"{server.url}/_sandbox/komerza/config", timeout=5).json()
    assert default["effective_rate_limits"][STORE] == {"quota": 60, "window_ms": 60000}
    r = requests.post(
        f"{server.url}/_sandbox/komerza/config",
        json={"accounts": {STORE: {"rate_limit": {"quota": 3, "window_ms": 60000}}}},
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["effective_rate_limits"][STORE]["quota"] == 3
    for _ in range(3):
        assert post(server, cost_order(1)).status_code == 200
    limited = post(server, cost_order(1))
    assert_wrapper_error(limited, 429, "RateLimited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert stats(server)["rate_limited"] == 1 and stats(server)["creates"] == 3
    # the other store has its own window
    other = {"Authorization": f"Bearer {GATED_TOKEN}"}
    assert post(server, cost_order(1), headers=other, store=GATED_STORE).status_code == 200


# --- faults ---------------------------------------------------------------------------------------


def test_error_500_answers_the_wrapper_once_then_ok(server):
    set_fault(server, mode="error_500", count=1)
    assert_wrapper_error(post(server, items_order()), 500, "InternalServerError")
    assert sandbox_orders(server) == []
    assert post(server, items_order()).status_code == 200
    assert len(sandbox_orders(server)) == 1


def test_rate_limit_faults_with_and_without_retry_after(server):
    set_fault(server, mode="rate_limit", seconds=2)
    r = post(server, items_order())
    assert_wrapper_error(r, 429, "RateLimited")
    assert r.headers["Retry-After"] == "2" and "2 seconds" in r.json()["message"]

    server.sandbox.set_fault("komerza", "rate_limit_no_header")  # the Python switch
    r = post(server, items_order())
    assert_wrapper_error(r, 429, "RateLimited")
    assert "Retry-After" not in r.headers
    assert post(server, items_order()).status_code == 200
    assert stats(server)["rate_limited"] == 2


def test_faults_apply_to_creates_unless_scope_all(server):
    order = post(server, cost_order(5)).json()["data"]
    set_fault(server, mode="error_500", count=2)
    lookup = f"{orders_url(server)}/{order['id']}"
    assert requests.get(lookup, headers=AUTH, timeout=5).status_code == 200  # not a create
    assert requests.get(f"{server.url}/_sandbox/komerza/faults", timeout=5).json()["fault"]["count"] == 2
    set_fault(server, mode="error_500", scope="all")
    assert_wrapper_error(requests.get(lookup, headers=AUTH, timeout=5), 500, "InternalServerError")
    set_fault(server, mode="error_500", scope="all")
    page = requests.get(f"{server.url}/komerza/checkout/{order['id']}", timeout=5)
    assert page.status_code == 200  # the checkout page is never faulted
    requests.delete(f"{server.url}/_sandbox/komerza/faults", timeout=5).raise_for_status()
    assert post(server, cost_order(5)).status_code == 200


def test_timeout_fault_makes_the_client_give_up_yet_creates_the_order(server):
    set_fault(server, mode="timeout", seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        post(server, items_order(metadata={"ref": "slow"}), timeout=0.3)
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 5
    while not sandbox_orders(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [o["order"]["metadata"] for o in sandbox_orders(server)] == [{"ref": "slow"}]
    assert post(server, items_order(), timeout=0.5).status_code == 200  # the fault was used up


def test_drop_after_create_loses_the_answer_but_keeps_the_order(server):
    set_fault(server, mode="drop_after_create")
    assert_wrapper_error(post(server, items_order(gateway="")), 400, "ValidationError")  # no order, no drop
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(server, items_order(metadata={"ref": "dropped"}))
    [kept] = sandbox_orders(server)
    assert kept["order"]["metadata"] == {"ref": "dropped"}
    found = requests.get(f"{orders_url(server)}/{kept['order']['id']}", headers=AUTH, timeout=5)
    assert found.status_code == 200
    assert post(server, items_order()).status_code == 200
    assert stats(server)["counters"]["dropped"] == 1 and stats(server)["creates"] == 2


# --- the real adapter, end to end -----------------------------------------------------------------


def adapter_for(server: SandboxServer, **settings: Any) -> KomerzaProvider:
    destination = Destination(
        provider="komerza",
        secret_id="x",
        base_url=f"{server.url}/komerza",
        settings={
            "store_id": STORE,
            "gateway": "stripe",
            "return_url": "https://shop.example/thanks",
            "checkout_url_template": f"{server.url}/komerza/checkout/{{order_id}}",
            **settings,
        },
    )
    return KomerzaProvider(destination=destination)


def adapter_delivery(provider: KomerzaProvider, **order_changes: Any) -> Any:
    changes: dict[str, Any] = {"lines": [{"sku": "TEE-BLUE-M", "quantity": 2}], "coupon": "SPRING10"}
    changes.update(order_changes)
    return delivery(
        order(**changes),
        provider="komerza",
        settings=provider.destination.settings,
        catalog={"TEE-BLUE-M": {"productId": TEE, "variantId": TEE_M}},
    )


def send(provider: KomerzaProvider, built: Any, api_key: str = TOKEN) -> requests.Response:
    return requests.request(
        built.method,
        built.url,
        json=built.json,
        headers={**built.headers, **provider.auth_headers({"api_key": api_key})},
        timeout=5,
    )


def test_adapter_end_to_end_items_order(server):
    provider = adapter_for(server)
    d = adapter_delivery(provider)
    result = provider.parse_create(send(provider, provider.build_create(d)))
    assert result.kind is ResultKind.SUCCEEDED, result
    assert result.provider_order_id and result.http_status == 200
    assert result.redirect_url == f"{server.url}/komerza/checkout/{result.provider_order_id}"

    [kept] = sandbox_orders(server)
    assert kept["order"]["id"] == result.provider_order_id
    assert kept["order"]["metadata"][REFERENCE_KEY] == d.tracking_id
    assert kept["order"]["amount"] == 22.5  # 2 x 12.50 less SPRING10
    assert kept["order"]["customer"]["countryCode"] == "GB"
    page = requests.get(result.redirect_url, timeout=5)
    assert page.status_code == 200 and '<strong id="amount">22.50 USD</strong>' in page.text


def test_adapter_end_to_end_cost_order(server):
    provider = adapter_for(server, mode="cost")
    d = adapter_delivery(provider, total="42.50", coupon=None)
    result = provider.parse_create(send(provider, provider.build_create(d)))
    assert result.kind is ResultKind.SUCCEEDED, result
    [kept] = sandbox_orders(server)
    assert kept["order"]["id"] == result.provider_order_id
    assert kept["order"]["items"] == [] and kept["order"]["amount"] == 42.5


def test_adapter_reads_the_sandbox_errors(server):
    provider = adapter_for(server)
    d = adapter_delivery(provider)
    refused = provider.parse_create(send(provider, provider.build_create(d), api_key="wrong"))
    assert refused.kind is ResultKind.AUTH and refused.error_code == "KOMERZA_BadToken"

    invalid = provider.parse_create(
        send(provider, provider.build_create(adapter_delivery(provider, coupon="NOPE")))
    )
    assert invalid.kind is ResultKind.PERMANENT and invalid.error_code == "KOMERZA_ValidationError"
    assert "couponCode" in (invalid.error_message or "")

    set_fault(server, mode="rate_limit", seconds=3)
    limited = provider.parse_create(send(provider, provider.build_create(d)))
    assert limited.kind is ResultKind.RETRYABLE and limited.error_code == "KOMERZA_RateLimited"
    assert limited.retry_after == 3

    set_fault(server, mode="error_500")
    failed = provider.parse_create(send(provider, provider.build_create(d)))
    assert failed.kind is ResultKind.RETRYABLE and failed.error_code == "KOMERZA_InternalServerError"
    assert sandbox_orders(server) == []


# --- listing and the adapter's lookup -------------------------------------------------------------


def test_list_filters_by_email_and_dates_and_pages(server):
    a = post(server, items_order(emailAddress="Ada@Example.com")).json()["data"]
    b = post(server, items_order()).json()["data"]
    post(server, items_order(emailAddress="bob@example.com"))

    def listing(**params: Any) -> requests.Response:
        return requests.get(orders_url(server), headers=AUTH, params=params, timeout=5)

    ada = listing(email="ada@example.com").json()
    assert ada["success"] is True and ada["pages"] == 1
    assert [o["id"] for o in ada["data"]] == [b["id"], a["id"]]  # newest first, email ignoring case
    assert set(ada["data"][0]) == {
        "id", "dateCreated", "items", "gateway", "customerEmail", "status", "currencyCode",
        "amountPaid", "amount", "coupon",
    }  # fmt: skip
    first = listing(email="ada@example.com", PageSize="1", Page="1").json()
    second = listing(email="ada@example.com", PageSize="1", Page="2").json()
    assert first["pages"] == second["pages"] == 2
    assert [o["id"] for o in first["data"] + second["data"]] == [b["id"], a["id"]]
    assert listing(email="ada@example.com", PageSize="1", Page="3").json()["data"] == []
    assert listing(email="ada@example.com", dateFrom="2099-01-01T00:00:00Z").json()["data"] == []
    assert listing(email="ada@example.com", dateTo="2000-01-01T00:00:00Z").json()["data"] == []
    assert len(listing(dateFrom="2000-01-01T00:00:00Z", dateTo="2099-01-01T00:00:00Z").json()["data"]) == 3
    assert listing(email="nobody@example.com").json() == {"success": True, "pages": 1, "data": []}
    bad = listing(dateFrom="yesterday")
    assert assert_wrapper_error(bad, 400, "ValidationError")["invalidFields"] == ["dateFrom"]
    assert_wrapper_error(listing(PageSize="0"), 400, "ValidationError")
    assert_wrapper_error(requests.get(orders_url(server), timeout=5), 401, "BadToken")


def lookup(provider: KomerzaProvider, d: Any) -> Any:
    built = provider.build_lookup(d)
    answer = requests.request(
        built.method,
        built.url,
        params=built.params,
        headers={**built.headers, **provider.auth_headers({"api_key": TOKEN})},
        timeout=5,
    )
    return provider.parse_lookup(answer)


def test_adapter_lookup_finds_the_order_by_its_metadata(server):
    provider = adapter_for(server)
    d = adapter_delivery(provider)
    assert lookup(provider, d).kind is ResultKind.NOT_FOUND
    # orders of the same buyer for other deliveries are read and passed over
    for _ in range(2):
        other = adapter_delivery(provider)
        assert (
            provider.parse_create(send(provider, provider.build_create(other))).kind is ResultKind.SUCCEEDED
        )
    # the create's answer is lost: the order exists, the lookup finds it by metadata
    set_fault(server, mode="drop_after_create")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        send(provider, provider.build_create(d))
    found = lookup(provider, d)
    assert found.kind is ResultKind.SUCCEEDED, found
    ours = [o for o in sandbox_orders(server) if o["order"]["metadata"][REFERENCE_KEY] == d.tracking_id]
    assert [o["order"]["id"] for o in ours] == [found.provider_order_id]
    assert found.redirect_url == f"{server.url}/komerza/checkout/{found.provider_order_id}"
    # another buyer's lookup does not see it
    elsewhere = adapter_delivery(provider, buyer={"email": "bob@example.com"})
    assert lookup(provider, elsewhere).kind is ResultKind.NOT_FOUND
