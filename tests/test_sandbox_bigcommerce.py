"""The BigCommerce sandbox over real HTTP: validation, auth, lookup, rate limits and every fault mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from orderbridge_sandboxes import SandboxConfig, SandboxServer, serve

STORE = "teststore"
TOKEN = "test-token-123"
AUTH = {"X-Auth-Token": TOKEN, "X-Auth-Client": "client-abc", "Accept": "application/json"}

CONFIG = SandboxConfig.model_validate(
    {
        "_comment": "comments are ignored",
        "bigcommerce": {
            "accounts": {
                STORE: {
                    "token": TOKEN,
                    "catalog": {"111": [77, 78], "112": {"name": "Mug", "sku": "MUG-1", "price": "12.50"}},
                },
                "otherstore": {"token": "other-token"},
                "multistore": {"token": "multi-token", "currencies": ["JPY", "KWD"]},
            }
        },
    }
)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = serve(CONFIG, port=0)
    yield srv
    srv.shutdown()


@pytest.fixture(autouse=True)
def _clean(server: SandboxServer) -> Iterator[None]:
    requests.post(f"{server.url}/_sandbox/reset", timeout=5).raise_for_status()
    yield


def orders_url(server: SandboxServer, store: str = STORE) -> str:
    return f"{server.url}/bigcommerce/stores/{store}/v2/orders"


def billing(**extra: Any) -> dict[str, Any]:
    return {
        "first_name": "Jane",
        "last_name": "Doe",
        "street_1": "123 Main Street",
        "city": "Austin",
        "state": "Texas",
        "zip": "78751",
        "country": "United States",
        "country_iso2": "US",
        "email": "janedoe@example.com",
        **extra,
    }


def catalog_order(ref: str = "ext-1", **extra: Any) -> dict[str, Any]:
    return {
        "billing_address": billing(),
        "products": [{"product_id": 111, "variant_id": 77, "quantity": 2}],
        "external_order_id": ref,
        **extra,
    }


def custom_order(ref: str = "ext-2", **product: Any) -> dict[str, Any]:
    item = {
        "name": "BigCommerce Coffee Mug",
        "quantity": 2,
        "price_inc_tax": 50,
        "price_ex_tax": 45,
        **product,
    }
    return {"billing_address": billing(), "products": [item], "external_order_id": ref}


def post(
    server: SandboxServer, body: Any, *, headers: dict[str, str] | None = None, **kw: Any
) -> requests.Response:
    kw.setdefault("timeout", 5)
    return requests.post(orders_url(server), json=body, headers=AUTH if headers is None else headers, **kw)


def sandbox_orders(server: SandboxServer) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/_sandbox/bigcommerce/orders", timeout=5)
    r.raise_for_status()
    return r.json()


def set_fault(server: SandboxServer, **fault: Any) -> None:
    requests.post(f"{server.url}/_sandbox/bigcommerce/faults", json=fault, timeout=5).raise_for_status()


def assert_error_array(r: requests.Response, status: int) -> list[str]:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, list) and body
    assert all(e["status"] == status and isinstance(e["message"], str) for e in body)
    return [e["message"] for e in body]


# --- creating orders ------------------------------------------------------------------------------


def test_catalog_product_order_is_created_and_echoed(server):
    r = post(server, catalog_order("ref-cat"))
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["id"] == 100
    assert order["status"] == "Pending" and order["status_id"] == 1
    assert order["external_order_id"] == "ref-cat"
    assert order["billing_address"]["zip"] == "78751"
    assert order["billing_address"]["email"] == "janedoe@example.com"
    assert order["subtotal_ex_tax"] == "20.0000" and order["total_inc_tax"] == "20.0000"
    assert order["items_total"] == 2 and order["currency_code"] == "USD"
    assert order["products"]["resource"] == "/orders/100/products"
    assert order["date_created"].endswith("+0000")
    assert r.headers["X-Rate-Limit-Requests-Quota"] == "150"
    assert r.headers["X-Rate-Limit-Time-Window-Ms"] == "30000"
    assert r.headers["X-Rate-Limit-Requests-Left"] == "149"

    again = requests.get(f"{orders_url(server)}/100", headers=AUTH, timeout=5)
    assert again.status_code == 200 and again.json() == order
    products = requests.get(f"{orders_url(server)}/100/products", headers=AUTH, timeout=5).json()
    assert [(p["product_id"], p["variant_id"], p["quantity"]) for p in products] == [(111, 77, 2)]

    [kept] = sandbox_orders(server)
    assert kept["request"] == catalog_order("ref-cat")
    assert kept["order"]["id"] == 100 and kept["account"] == STORE
    assert kept["headers"]["X-Auth-Token"] == "<redacted>"
    assert kept["headers"]["X-Auth-Client"] == "client-abc"
    assert TOKEN not in str(kept)


def test_custom_product_order_totals_and_incrementing_ids(server):
    first = post(server, custom_order("ref-a"))
    second = post(server, custom_order("ref-b", price_inc_tax="10.98", price_ex_tax="10", quantity=1))
    assert first.status_code == second.status_code == 200
    a, b = first.json(), second.json()
    assert (a["id"], b["id"]) == (100, 101)
    assert a["subtotal_ex_tax"] == "90.0000" and a["subtotal_inc_tax"] == "100.0000"
    assert a["total_tax"] == "10.0000" and b["total_inc_tax"] == "10.9800"
    assert a["external_order_id"] == "ref-a"


def test_status_id_and_catalog_price_are_used(server):
    body = catalog_order("ref-mug", status_id=11)
    body["products"] = [{"product_id": 112, "quantity": 3}]
    order = post(server, body).json()
    assert order["status"] == "Awaiting Fulfillment"
    assert order["subtotal_inc_tax"] == "37.5000"


# --- validation -----------------------------------------------------------------------------------


def _without_billing() -> dict[str, Any]:
    body = catalog_order()
    del body["billing_address"]
    return body


INVALID = {
    "missing billing_address": (_without_billing(), "'billing_address' was not supplied"),
    "zip too short": (catalog_order(billing_address=billing(zip="7")), "billing_address.zip"),
    "bad email": (catalog_order(billing_address=billing(email="not-an-email")), "billing_address.email"),
    "missing products": ({"billing_address": billing()}, "'products' was not supplied"),
    "empty products": (catalog_order(products=[]), "products"),
    "custom product without price": (
        {"billing_address": billing(), "products": [{"name": "Mug", "quantity": 1, "price_inc_tax": 5}]},
        "products[0].price_ex_tax",
    ),
    "name over 250": (custom_order(name="x" * 251), "products[0].name"),
    "quantity zero": (custom_order(quantity=0), "products[0].quantity"),
    "read-only external_id": (catalog_order(external_id="abc"), "'external_id' cannot be written to"),
    "read-only status": (catalog_order(status="Shipped"), "'status' cannot be written to"),
    "currency not enabled": (catalog_order(default_currency_code="EUR"), "EUR is not enabled"),
    "currency not a code": (catalog_order(default_currency_code="usd"), "default_currency_code"),
    "empty zip where postcodes exist": (
        catalog_order(billing_address=billing(zip="")),
        "billing_address.zip",
    ),
    "unpaired subtotal": (catalog_order(subtotal_ex_tax="1.00"), "requires subtotal_inc_tax"),
    "negative discount": (catalog_order(discount_amount="-1"), "discount_amount"),
    "unknown product": (
        {"billing_address": billing(), "products": [{"product_id": 999, "quantity": 1}]},
        "999",
    ),
    "unknown variant": (
        {"billing_address": billing(), "products": [{"product_id": 111, "variant_id": 5, "quantity": 1}]},
        "variant 5",
    ),
    "ip_address too long": (catalog_order(ip_address="1" * 31), "ip_address"),
    "consignments with products": (catalog_order(consignments={"pickups": []}), "consignments"),
    "not an object": ([catalog_order()], "JSON object"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_orders_get_400_with_an_error_array(server, case):
    body, fragment = INVALID[case]
    messages = assert_error_array(post(server, body), 400)
    assert any(fragment in m for m in messages), messages
    assert sandbox_orders(server) == []


def test_auth_store_and_content_type(server):
    assert_error_array(post(server, catalog_order(), headers={"X-Auth-Token": "wrong"}), 401)
    assert_error_array(post(server, catalog_order(), headers={}), 401)
    r = requests.post(orders_url(server, "nosuchstore"), json=catalog_order(), headers=AUTH, timeout=5)
    assert_error_array(r, 404)
    r = requests.post(
        orders_url(server), data="x=1", headers={**AUTH, "Content-Type": "text/plain"}, timeout=5
    )
    assert_error_array(r, 415)
    # the other store's token does not open this store
    assert_error_array(post(server, catalog_order(), headers={"X-Auth-Token": "other-token"}), 401)
    assert sandbox_orders(server) == []


# --- lookup ---------------------------------------------------------------------------------------


def test_lookup_by_external_order_id_is_200_or_empty_204(server):
    assert post(server, catalog_order("ref-found")).status_code == 200
    r = requests.get(orders_url(server), params={"external_order_id": "ref-found"}, headers=AUTH, timeout=5)
    assert r.status_code == 200
    assert [o["external_order_id"] for o in r.json()] == ["ref-found"]
    r = requests.get(orders_url(server), params={"external_order_id": "ref-missing"}, headers=AUTH, timeout=5)
    assert r.status_code == 204 and r.content == b""
    missing = requests.get(f"{orders_url(server)}/555", headers=AUTH, timeout=5)
    assert assert_error_array(missing, 404) == ["The requested resource was not found."]


# --- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_counts_down_then_429_with_retry_after(server):
    r = requests.post(
        f"{server.url}/_sandbox/bigcommerce/config",
        json={"accounts": {STORE: {"rate_limit": {"quota": 3, "window_ms": 60000}}}},
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["effective_rate_limits"][STORE]["quota"] == 3
    lefts = []
    for i in range(3):
        ok = post(server, catalog_order(f"ref-rl-{i}"))
        assert ok.status_code == 200
        assert ok.headers["X-Rate-Limit-Requests-Quota"] == "3"
        lefts.append(int(ok.headers["X-Rate-Limit-Requests-Left"]))
    assert lefts == [2, 1, 0]
    limited = post(server, catalog_order("ref-rl-3"))
    assert_error_array(limited, 429)
    assert int(limited.headers["X-Retry-After"]) >= 1
    assert limited.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert 0 < int(limited.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 60000
    stats = requests.get(f"{server.url}/_sandbox/bigcommerce/stats", timeout=5).json()
    assert stats["rate_limited"] == 1 and stats["creates"] == 3
    # another store has its own window
    other = requests.get(orders_url(server, "otherstore"), headers={"X-Auth-Token": "other-token"}, timeout=5)
    assert other.status_code == 204 and other.headers["X-Rate-Limit-Requests-Left"] == "149"


# --- faults ---------------------------------------------------------------------------------------


def test_error_500_once_then_ok(server):
    set_fault(server, mode="error_500", count=1)
    assert_error_array(post(server, catalog_order("ref-500")), 500)
    assert sandbox_orders(server) == []
    assert post(server, catalog_order("ref-500")).status_code == 200
    assert len(sandbox_orders(server)) == 1


def test_rate_limit_faults_with_and_without_headers(server):
    set_fault(server, mode="rate_limit", seconds=2)
    r = post(server, catalog_order())
    assert_error_array(r, 429)
    assert r.headers["X-Retry-After"] == "2" and r.headers["X-Rate-Limit-Requests-Left"] == "0"

    server.sandbox.set_fault("bigcommerce", "rate_limit_no_header")  # the Python switch
    r = post(server, catalog_order())
    assert_error_array(r, 429)
    assert "X-Retry-After" not in r.headers and "X-Rate-Limit-Requests-Left" not in r.headers
    assert post(server, catalog_order()).status_code == 200
    assert requests.get(f"{server.url}/_sandbox/bigcommerce/stats", timeout=5).json()["rate_limited"] == 2


def test_faults_apply_to_creates_unless_scope_all(server):
    set_fault(server, mode="error_500", count=2)
    assert requests.get(orders_url(server), headers=AUTH, timeout=5).status_code == 204  # not a create
    assert requests.get(f"{server.url}/_sandbox/bigcommerce/faults", timeout=5).json()["fault"]["count"] == 2
    set_fault(server, mode="error_500", scope="all")
    assert requests.get(orders_url(server), headers=AUTH, timeout=5).status_code == 500
    set_fault(server, mode="error_500", count=5)
    requests.delete(f"{server.url}/_sandbox/bigcommerce/faults", timeout=5).raise_for_status()
    assert post(server, catalog_order()).status_code == 200
    bad = requests.post(f"{server.url}/_sandbox/bigcommerce/faults", json={"mode": "explode"}, timeout=5)
    assert bad.status_code == 400


def test_timeout_fault_makes_the_client_give_up_yet_creates_the_order(server):
    set_fault(server, mode="timeout", seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        post(server, catalog_order("ref-slow"), timeout=0.3)
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 5
    while not sandbox_orders(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [o["order"]["external_order_id"] for o in sandbox_orders(server)] == ["ref-slow"]
    fast = post(server, catalog_order("ref-fast"), timeout=0.5)  # the fault was used up
    assert fast.status_code == 200


def test_drop_after_create_loses_the_answer_but_keeps_the_order(server):
    set_fault(server, mode="drop_after_create")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(server, catalog_order("ref-drop"))
    [kept] = sandbox_orders(server)
    assert kept["order"]["external_order_id"] == "ref-drop"
    found = requests.get(
        orders_url(server), params={"external_order_id": "ref-drop"}, headers=AUTH, timeout=5
    )
    assert found.status_code == 200 and found.json()[0]["id"] == kept["order"]["id"]
    assert post(server, catalog_order("ref-after")).status_code == 200
    stats = requests.get(f"{server.url}/_sandbox/bigcommerce/stats", timeout=5).json()
    assert stats["counters"]["dropped"] == 1 and stats["creates"] == 2


def test_drop_after_create_waits_for_a_create(server):
    set_fault(server, mode="drop_after_create")
    assert_error_array(
        post(server, catalog_order(billing_address=billing(zip="1"))), 400
    )  # no order, no drop
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(server, catalog_order("ref-drop-2"))
    assert len(sandbox_orders(server)) == 1


# --- control --------------------------------------------------------------------------------------


def test_runtime_credentials_and_reset(server):
    r = requests.post(
        f"{server.url}/_sandbox/bigcommerce/config",
        json={"accounts": {STORE: {"token": "rotated"}}},
        timeout=5,
    )
    assert r.status_code == 200 and "rotated" not in r.text  # masked
    assert post(server, catalog_order()).status_code == 401
    assert post(server, catalog_order(), headers={"X-Auth-Token": "rotated"}).status_code == 200
    requests.post(f"{server.url}/_sandbox/reset", timeout=5).raise_for_status()
    assert sandbox_orders(server) == []
    assert post(server, catalog_order()).status_code == 200  # startup token restored
    assert requests.get(f"{server.url}/_sandbox/nosuch/orders", timeout=5).status_code == 404
    bad = requests.post(
        f"{server.url}/_sandbox/bigcommerce/config", json={"rate_limit": {"quota": 0}}, timeout=5
    )
    assert bad.status_code == 400


# --- money ----------------------------------------------------------------------------------------


def test_totals_follow_prices_discount_shipping_and_tax(server):
    body = custom_order("ref-money", price_ex_tax="199.00", price_inc_tax="203.98", quantity=2)
    body.update(discount_amount="5.00", shipping_cost_ex_tax="10.00", shipping_cost_inc_tax="10.50")
    order = post(server, body).json()
    assert order["subtotal_ex_tax"] == "398.0000" and order["subtotal_inc_tax"] == "407.9600"
    assert order["discount_amount"] == "5.0000" and order["shipping_cost_tax"] == "0.5000"
    assert order["total_ex_tax"] == "403.0000" and order["total_inc_tax"] == "413.4600"
    assert order["total_tax"] == "10.4600"
    assert order["currency_code"] == order["default_currency_code"] == "USD"
    [kept] = sandbox_orders(server)
    assert kept["order"]["total_inc_tax"] == "413.4600"


def test_overrides_win_and_catalog_price_is_overridden(server):
    body = catalog_order("ref-over", subtotal_ex_tax="3.00", subtotal_inc_tax="3.25")
    body["products"] = [{"product_id": 112, "quantity": 3, "price_ex_tax": 1, "price_inc_tax": 1.0333}]
    order = post(server, body).json()
    assert order["subtotal_inc_tax"] == "3.2500" and order["total_inc_tax"] == "3.2500"
    body = catalog_order("ref-total", total_ex_tax="30", total_inc_tax="33")
    body["products"] = [{"product_id": 112, "quantity": 3}]  # the catalog's 12.50 a unit
    order = post(server, body).json()
    assert order["subtotal_inc_tax"] == "37.5000" and order["total_inc_tax"] == "33.0000"
    body = catalog_order("ref-paid")
    body["products"] = [{"product_id": 112, "quantity": 1, "price_ex_tax": 9.99, "price_inc_tax": 9.99}]
    assert post(server, body).json()["total_inc_tax"] == "9.9900"


def test_json_numbers_are_read_exactly(server):
    raw = (
        '{"billing_address": {"zip": "78751", "country_iso2": "US"}, "external_order_id": "ref-exact",'
        ' "products": [{"name": "Gold", "quantity": 3, "price_ex_tax": 0.1, "price_inc_tax": 0.1},'
        ' {"name": "Bar", "quantity": 1, "price_ex_tax": 123456789012.34, "price_inc_tax": 123456789012.34}]}'
    )
    r = requests.post(
        orders_url(server), data=raw, headers={**AUTH, "Content-Type": "application/json"}, timeout=5
    )
    assert r.status_code == 200, r.text
    assert r.json()["total_inc_tax"] == "123456789012.6400"


def test_currency_must_be_enabled_on_the_store(server):
    url = orders_url(server, "multistore")
    headers = {"X-Auth-Token": "multi-token"}
    body = custom_order("ref-jpy", price_ex_tax=59400, price_inc_tax=59400, quantity=1)
    body["default_currency_code"] = "JPY"
    order = requests.post(url, json=body, headers=headers, timeout=5).json()
    assert order["currency_code"] == order["default_currency_code"] == "JPY"
    assert order["store_default_currency_code"] == "USD" and order["total_inc_tax"] == "59400.0000"
    body["default_currency_code"] = "EUR"
    messages = assert_error_array(requests.post(url, json=body, headers=headers, timeout=5), 400)
    assert any("EUR is not enabled on this store (USD, JPY, KWD)" in m for m in messages)
    # a single-currency store takes its own currency, and nothing else
    assert post(server, custom_order("ref-usd") | {"default_currency_code": "USD"}).status_code == 200


def test_a_country_without_postcodes_may_send_an_empty_zip(server):
    hk = billing(zip="", country="Hong Kong", country_iso2="HK", state="Kowloon")
    assert post(server, catalog_order("ref-hk", billing_address=hk)).status_code == 200
    messages = assert_error_array(post(server, catalog_order(billing_address={**hk, "zip": None})), 400)
    assert any("'billing_address.zip' was not supplied" in m for m in messages)
