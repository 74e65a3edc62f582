"""The Lana sandbox over real HTTP: the array-of-one body, validation, auth, idempotency, rate limits,
every fault mode, and the real Lana adapter end to end."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from orderbridge.dispatch.sender import Sender
from orderbridge.models.config import Destination
from orderbridge.providers.base import ProviderResult, ResultKind
from orderbridge.providers.lana import LanaProvider
from orderbridge_sandboxes import SandboxConfig, SandboxServer, serve
from tests.factories import delivery, order


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(subject: str) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": subject, "iat": 1700000000}).encode())
    signature = b64url(hashlib.sha256(f"{header}.{payload}".encode()).digest())
    return f"{header}.{payload}.{signature}"


SHOP = "sh_EQzGqWoY"
OTHER_SHOP = "sh_Other42"
TOKEN = make_jwt("us_Staff001")
OTHER_TOKEN = make_jwt("us_Staff002")
AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
TEE = "va_TeeBlueM"
MUG = "va_Mug00001"
GATEWAY = "gw_Manual01"
REGISTRY = {"lana": "orderbridge_sandboxes.lana:LanaSandbox"}

CONFIG = SandboxConfig.model_validate(
    {
        "_comment": "comments are ignored",
        "lana": {
            "accounts": {
                SHOP: {
                    "token": TOKEN,
                    "catalog": {TEE: 1500, MUG: {"price": 1250, "inventory": 3, "title": "Mug"}},
                    "discount_codes": ["SPRING10"],
                    "gateways": [GATEWAY],
                },
                OTHER_SHOP: {"token": OTHER_TOKEN},
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


def orders_url(server: SandboxServer) -> str:
    return f"{server.url}/lana/orders.json"


def address(**extra: Any) -> dict[str, Any]:
    return {
        "address1": "Chestnut Street 92",
        "address2": "Apartment 2",
        "city": "Louisville",
        "country": "US",
        "name": "John Smith",
        "province": "KY",
        "zip": "40202",
        **extra,
    }


def order_create(**extra: Any) -> dict[str, Any]:
    return {
        "billing_address": address(),
        "shipping_address": address(),
        "currency": "USD",
        "customer_email": "john@example.com",
        "discount_code": "SPRING10",
        "gateway_id": GATEWAY,
        "line_items": [
            {
                "variant_id": TEE,
                "quantity": 2,
                "field_set_id": "fs_Engraving",
                "fields": [
                    {"label": "Engraving", "value": "JS", "type": "text", "field_index": 0, "choice_index": 0}
                ],
            }
        ],
        "tags": ["orderbridge:ob_test"],
        **extra,
    }


def post(
    server: SandboxServer,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    shop: str | None = SHOP,
    key: str | None = None,
    **kw: Any,
) -> requests.Response:
    kw.setdefault("timeout", 5)
    sent = dict(AUTH if headers is None else headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    params = {} if shop is None else {"shop_id": shop}
    if isinstance(body, bytes | str):
        sent.setdefault("Content-Type", "application/json")
        return requests.post(orders_url(server), params=params, data=body, headers=sent, **kw)
    return requests.post(orders_url(server), params=params, json=body, headers=sent, **kw)


def get(server: SandboxServer, **params: str) -> requests.Response:
    return requests.get(orders_url(server), params={"shop_id": SHOP, **params}, headers=AUTH, timeout=5)


def sandbox_orders(server: SandboxServer) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/_sandbox/lana/orders", timeout=5)
    r.raise_for_status()
    return r.json()


def stats(server: SandboxServer) -> dict[str, Any]:
    return requests.get(f"{server.url}/_sandbox/lana/stats", timeout=5).json()


def set_fault(server: SandboxServer, **fault: Any) -> None:
    requests.post(f"{server.url}/_sandbox/lana/faults", json=fault, timeout=5).raise_for_status()


def assert_error(r: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str), body
    return body["error"]


def invalid_fields(r: requests.Response) -> dict[str, str]:
    """`meta.fields` of a 1000 answer as {field: problem}."""
    error = assert_error(r, 400, 1000)
    fields = error["meta"]["fields"]
    assert all({"field", "problem", "min", "max", "message"} <= set(f) for f in fields), fields
    return {f["field"]: f["problem"] for f in fields}


# --- creating orders ------------------------------------------------------------------------------


def test_valid_order_array_in_array_out(server):
    r = post(server, [order_create()], key="key-valid-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    [created] = body
    assert created["id"].startswith("or_") and len(created["id"]) == 11
    assert created["number"] == 1001
    assert created["currency"] == "USD" and created["customer_email"] == "john@example.com"
    assert created["state"] == "cart" and created["financial_status"] == "unpaid"
    assert created["discount_code"] == "SPRING10" and created["gateway"] == {"id": GATEWAY}
    assert created["billing_address"]["province"] == "KY"
    assert created["billing_address"]["id"].startswith("ad_")
    [line] = created["line_items"]
    assert line["id"].startswith("li_") and line["variant"] == {"id": TEE}
    assert line["quantity"] == 2 and line["custom_item_index"] == -1
    assert line["detail"]["price"] == 1500
    assert line["fields"] == [
        {"choice_index": 0, "field_index": 0, "label": "Engraving", "type": "text", "value": "JS"}
    ]
    assert created["custom_items"] is None
    assert created["tags"] == ["orderbridge:ob_test"]
    assert created["total_price"] == 3000 and created["subtotal_price"] == 3000  # minor units
    assert created["created_at"].endswith("Z")
    assert "Retry-After" not in r.headers

    second = post(server, [order_create(tags=["b"])])
    assert second.status_code == 200
    assert second.json()[0]["number"] == 1002 and second.json()[0]["id"] != created["id"]

    [kept, _] = sandbox_orders(server)
    assert kept["request"] == [order_create()]
    assert kept["account"] == SHOP and kept["order"] == created
    assert kept["headers"]["Authorization"] == "<redacted>"
    assert kept["headers"]["Idempotency-Key"] == "key-valid-1"
    assert TOKEN not in json.dumps(kept)


def test_custom_item_via_index_and_minimal_order(server):
    body = {
        "line_items": [
            {"variant_id": MUG, "quantity": 1},
            {"custom_item_index": {"value": 1}, "quantity": 3},
            {"custom_item_index": {"value": 0}, "quantity": 1},
        ],
        "custom_items": [
            {"title": "Gift wrap", "price": 350, "physical": True, "taxable": True, "grams": 20},
            {"title": "Engraving", "price": 500},
        ],
    }
    r = post(server, [body])
    assert r.status_code == 200, r.text
    created = r.json()[0]
    assert created["currency"] == "USD" and created["billing_address"] is None
    assert [li["custom_item_index"] for li in created["line_items"]] == [-1, 1, 0]
    assert created["line_items"][1]["variant"] is None
    assert [li["detail"]["price"] for li in created["line_items"]] == [1250, 500, 350]
    assert [c["title"] for c in created["custom_items"]] == ["Gift wrap", "Engraving"]
    assert created["custom_items"][1]["physical"] is False
    assert created["total_price"] == 1250 + 3 * 500 + 350
    assert created["total_weight"] == 20


def test_clone_from_id_copies_an_order(server):
    first = post(server, [order_create()]).json()[0]
    r = post(server, [{"clone_from_id": first["id"], "line_items": "ignored"}])
    assert r.status_code == 200, r.text
    clone = r.json()[0]
    assert clone["id"] != first["id"] and clone["number"] == 1002
    assert clone["line_items"][0]["variant"] == {"id": TEE} and clone["total_price"] == 3000
    assert invalid_fields(post(server, [{"clone_from_id": "or_Missing1"}])) == {
        "0.clone_from_id": "invalid_identifier"
    }


# --- the body: an array of exactly one ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (order_create(), 1030),  # an object, not an array
        ([], 1132),
        ([order_create(), order_create()], 1132),
        (["not an object"], 1030),
        (b"[{not json", 1030),
        (b"", 1030),
    ],
    ids=["object", "empty-array", "two-elements", "string-element", "malformed", "empty-body"],
)
def test_body_must_be_an_array_of_exactly_one_order(server, body, code):
    assert_error(post(server, body), 400, code)
    assert sandbox_orders(server) == []


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["billing_address", "shipping_address"])
@pytest.mark.parametrize("missing", ["address1", "city", "country", "name", "province", "zip"])
def test_each_address_field_is_mandatory(server, which, missing):
    incomplete = address()
    del incomplete[missing]
    assert invalid_fields(post(server, [order_create(**{which: incomplete})])) == {
        f"0.{which}.{missing}": "mandatory"
    }
    empty = address(**{missing: ""})
    assert invalid_fields(post(server, [order_create(**{which: empty})])) == {
        f"0.{which}.{missing}": "mandatory"
    }
    assert sandbox_orders(server) == []


def test_country_is_two_letters(server):
    assert post(server, [order_create(billing_address=address(country="GB"))]).status_code == 200
    r = post(server, [order_create(billing_address=address(country="GBR"))])
    assert invalid_fields(r) == {"0.billing_address.country": "invalid_value"}
    entry = r.json()["error"]["meta"]["fields"][0]
    assert (entry["min"], entry["max"]) == (2, 2)


def _line(**item: Any) -> dict[str, Any]:
    return order_create(line_items=[item])


INVALID: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "line without variant_id": (_line(quantity=1), {"0.line_items.0.variant_id": "mandatory"}),
    "unknown variant": (
        _line(variant_id="va_Unknown1", quantity=1),
        {"0.line_items.0.variant_id": "invalid_identifier"},
    ),
    "variant id shape": (
        _line(variant_id="12345", quantity=1),
        {"0.line_items.0.variant_id": "invalid_identifier"},
    ),
    "quantity zero": (
        _line(variant_id=TEE, quantity=0),
        {"0.line_items.0.quantity": "invalid_positive_int64"},
    ),
    "quantity missing": (_line(variant_id=TEE), {"0.line_items.0.quantity": "mandatory"}),
    "custom index out of range": (
        order_create(
            line_items=[{"custom_item_index": {"value": 1}, "quantity": 1}],
            custom_items=[{"title": "Wrap", "price": 100}],
        ),
        {"0.line_items.0.custom_item_index.value": "invalid_value"},
    ),
    "custom item without title": (
        order_create(
            line_items=[{"custom_item_index": {"value": 0}, "quantity": 1}], custom_items=[{"price": 100}]
        ),
        {"0.custom_items.0.title": "mandatory"},
    ),
    "custom price in major units": (
        order_create(
            line_items=[{"custom_item_index": {"value": 0}, "quantity": 1}],
            custom_items=[{"title": "Wrap", "price": 3.5}],
        ),
        {"0.custom_items.0.price": "invalid_non_negative_int64"},
    ),
    "negative custom price": (
        order_create(
            line_items=[{"custom_item_index": {"value": 0}, "quantity": 1}],
            custom_items=[{"title": "Wrap", "price": -1}],
        ),
        {"0.custom_items.0.price": "invalid_non_negative_int64"},
    ),
    "field type": (
        _line(
            variant_id=TEE,
            quantity=1,
            field_set_id="fs_A",
            fields=[{"label": "A", "value": "b", "type": "color", "field_index": 0, "choice_index": 0}],
        ),
        {"0.line_items.0.fields.0.type": "invalid_enum"},
    ),
    "no line items": (order_create(line_items=[]), {"0.line_items": "mandatory"}),
    "bad email": (order_create(customer_email="not-an-email"), {"0.customer_email": "invalid_email"}),
    "currency": (order_create(currency="usd"), {"0.currency": "invalid_value"}),
    "unknown discount code": (
        order_create(discount_code="NOPE"),
        {"0.discount_code": "invalid_discount_code"},
    ),
    "gateway shape": (order_create(gateway_id="manual"), {"0.gateway_id": "invalid_identifier"}),
    "unknown gateway": (order_create(gateway_id="gw_Other001"), {"0.gateway_id": "invalid_identifier"}),
    "tags not strings": (order_create(tags=["a", 1]), {"0.tags": "invalid_value"}),
    "boolean": (
        order_create(send_order_notifications="yes"),
        {"0.send_order_notifications": "invalid_boolean"},
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_orders_get_1000_with_meta_fields(server, case):
    body, expected = INVALID[case]
    assert invalid_fields(post(server, [body])) == expected
    assert sandbox_orders(server) == []


def test_every_problem_is_listed(server):
    body = order_create(billing_address=address(zip="", country="USA"), customer_email="x")
    body["line_items"] = [{"variant_id": TEE, "quantity": 0}, {"quantity": 1}]
    assert invalid_fields(post(server, [body])) == {
        "0.billing_address.zip": "mandatory",
        "0.billing_address.country": "invalid_value",
        "0.customer_email": "invalid_email",
        "0.line_items.0.quantity": "invalid_positive_int64",
        "0.line_items.1.variant_id": "mandatory",
    }


def test_discount_code_is_case_insensitive_and_any_code_when_the_shop_lists_none(server):
    assert post(server, [order_create(discount_code="spring10")]).status_code == 200
    other = post(
        server,
        [order_create(discount_code="ANYTHING", gateway_id="gw_Whatever")],
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
        shop=OTHER_SHOP,
    )
    assert other.status_code == 200, other.text  # no catalog, no codes, no gateways listed


def test_out_of_stock_is_an_order_error_1001(server):
    assert post(server, [_line(variant_id=MUG, quantity=2)]).status_code == 200
    r = post(
        server,
        [order_create(line_items=[{"variant_id": TEE, "quantity": 1}, {"variant_id": MUG, "quantity": 2}])],
    )
    error = assert_error(r, 400, 1001)
    assert error["meta"]["errors"] == [
        {"code": "out_of_stock", "line_item_index": 1, "subject": MUG, "min": 0, "max": 1}
    ]
    assert post(server, [_line(variant_id=MUG, quantity=1)]).status_code == 200
    assert len(sandbox_orders(server)) == 2


# --- auth and shop --------------------------------------------------------------------------------


def test_auth_and_shop(server):
    body = [order_create()]
    assert_error(post(server, body, headers={}), 401, 401)
    assert_error(post(server, body, headers={"Authorization": "Bearer not-a-jwt"}), 401, 999)
    assert_error(post(server, body, headers={"Authorization": f"Token {TOKEN}"}), 401, 999)
    assert_error(post(server, body, headers={"Authorization": "Bearer a.b.c"}), 401, 999)  # not JSON
    # a well-formed JWT that is not this shop's
    assert_error(post(server, body, headers={"Authorization": f"Bearer {OTHER_TOKEN}"}), 401, 999)
    assert_error(post(server, body, shop="sh_NoSuchShop"), 404, 404)
    assert invalid_fields(post(server, body, shop=None)) == {"shop_id": "mandatory"}
    assert invalid_fields(post(server, body, shop="EQzGqWoY")) == {"shop_id": "invalid_identifier"}
    assert sandbox_orders(server) == []
    # the scheme is case-insensitive
    assert post(server, body, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_config_tokens_must_be_jwts():
    bad = {"lana": {"accounts": {SHOP: {"token": "plain-secret"}}}}
    with pytest.raises(ValueError, match="JWT"):
        serve(bad, port=0, registry=REGISTRY)


# --- idempotency ----------------------------------------------------------------------------------


def test_idempotent_replay_returns_the_first_result_and_creates_nothing(server):
    raw = json.dumps([order_create()]).encode()
    first = post(server, raw, key="key-replay")
    again = post(server, raw, key="key-replay")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert len(sandbox_orders(server)) == 1
    assert stats(server)["counters"]["idempotent_replays"] == 1

    # same key, different bytes (even the same JSON re-serialised): refused, nothing created
    spaced = json.dumps([order_create()], indent=2).encode()
    refused = post(server, spaced, key="key-replay")
    error = assert_error(refused, 422, 1000)
    assert error["meta"]["fields"][0]["field"] == "Idempotency-Key"
    assert error["meta"]["fields"][0]["problem"] == "duplicate"
    assert len(sandbox_orders(server)) == 1

    # keys are per shop: the other shop's same key is a new order
    other = post(
        server, raw, key="key-replay", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}, shop=OTHER_SHOP
    )
    assert other.status_code == 200 and other.json()[0]["id"] != first.json()[0]["id"]
    # without a key nothing is remembered
    assert post(server, raw).json()[0]["number"] == 1002


def test_failed_requests_are_not_remembered(server):
    bad = [order_create(discount_code="NOPE")]
    assert_error(post(server, bad, key="key-retry"), 400, 1000)
    fixed = post(server, [order_create()], key="key-retry")  # another body, same key: evaluated afresh
    assert fixed.status_code == 200
    assert post(server, [order_create()], key="key-retry").content == fixed.content
    assert len(sandbox_orders(server)) == 1


# --- lookup ---------------------------------------------------------------------------------------


def test_lookup_by_ids_uuid_and_tag(server):
    a = post(server, [order_create(tags=["orderbridge:one"])]).json()[0]
    b = post(server, [order_create(tags=["orderbridge:two"])]).json()[0]
    assert [o["id"] for o in get(server).json()] == [a["id"], b["id"]]
    assert [o["id"] for o in get(server, ids=f"{b['id']},{a['id']}").json()] == [b["id"], a["id"]]
    assert get(server, uuid=a["uuid"]).json() == [a]
    assert get(server, tag="orderbridge:two").json() == [b]
    assert get(server, tag="orderbridge:none").json() == []
    assert_error(get(server, ids="or_Missing1"), 404, 404)
    assert invalid_fields(get(server, ids="123")) == {"ids": "invalid_identifier"}
    unauth = requests.get(orders_url(server), params={"shop_id": SHOP}, timeout=5)
    assert_error(unauth, 401, 401)


# --- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_429_envelope_and_retry_after(server):
    r = requests.post(
        f"{server.url}/_sandbox/lana/config",
        json={"accounts": {SHOP: {"rate_limit": {"quota": 3, "window_ms": 60000}}}},
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["effective_rate_limits"][SHOP]["quota"] == 3
    assert r.json()["effective_rate_limits"][OTHER_SHOP] == {"quota": 120, "window_ms": 60000}
    for i in range(3):
        assert post(server, [order_create(tags=[f"t{i}"])]).status_code == 200
    limited = post(server, [order_create()])
    error = assert_error(limited, 429, 429)
    assert error["message"] == "Rate limit exceeded"
    assert error["meta"]["rate_info"]["cap"] == 3 and error["meta"]["rate_info"]["count"] == 3
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert stats(server)["rate_limited"] == 1 and stats(server)["creates"] == 3
    # the limit is per shop
    other = requests.get(
        orders_url(server), params={"shop_id": OTHER_SHOP}, headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
    )
    assert other.status_code == 200 and other.json() == []


# --- faults ---------------------------------------------------------------------------------------


def test_error_500_once_then_ok(server):
    set_fault(server, mode="error_500")
    assert_error(post(server, [order_create()], key="key-500"), 500, 500)
    assert sandbox_orders(server) == []
    assert post(server, [order_create()], key="key-500").status_code == 200
    assert len(sandbox_orders(server)) == 1


def test_rate_limit_faults_with_and_without_headers(server):
    set_fault(server, mode="rate_limit", seconds=2)
    r = post(server, [order_create()])
    assert_error(r, 429, 429)
    assert r.headers["Retry-After"] == "2"
    server.sandbox.set_fault("lana", "rate_limit_no_header")
    r = post(server, [order_create()])
    assert_error(r, 429, 429)
    assert "Retry-After" not in r.headers and "meta" not in r.json()["error"]
    assert post(server, [order_create()]).status_code == 200
    assert stats(server)["rate_limited"] == 2


def test_faults_apply_to_creates_unless_scope_all(server):
    set_fault(server, mode="error_500", count=2)
    assert get(server).status_code == 200
    set_fault(server, mode="error_500", scope="all")
    assert_error(get(server), 500, 500)
    assert get(server).status_code == 200


def test_timeout_fault_then_same_key_retry_gets_the_one_order(server):
    set_fault(server, mode="timeout", seconds=1.0)
    raw = json.dumps([order_create()]).encode()
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        post(server, raw, key="key-slow", timeout=0.3)
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 5
    while not sandbox_orders(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    [kept] = sandbox_orders(server)
    retry = post(server, raw, key="key-slow")
    assert retry.status_code == 200 and retry.json() == [kept["order"]]
    assert len(sandbox_orders(server)) == 1


def test_drop_after_create_then_same_key_retry_returns_the_same_order(server):
    set_fault(server, mode="drop_after_create")
    raw = json.dumps([order_create()]).encode()
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(server, raw, key="key-drop")
    [kept] = sandbox_orders(server)
    retry = post(server, raw, key="key-drop")
    assert retry.status_code == 200 and retry.json() == [kept["order"]]
    assert len(sandbox_orders(server)) == 1
    assert stats(server)["counters"]["dropped"] == 1 and stats(server)["creates"] == 1


def test_drop_after_create_waits_for_a_create(server):
    set_fault(server, mode="drop_after_create")
    assert_error(post(server, [order_create(currency="usd")]), 400, 1000)  # nothing created, no drop
    raw = json.dumps([order_create()]).encode()
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(server, raw, key="key-drop-2")
    assert post(server, raw, key="key-drop-2").status_code == 200  # a replay is not a create: no drop
    assert len(sandbox_orders(server)) == 1


# --- the real adapter, end to end -----------------------------------------------------------------

ADAPTER_ADDRESS = {
    "first_name": "John",
    "last_name": "Smith",
    "address1": "Chestnut Street 92",
    "city": "Louisville",
    "province": "KY",
    "zip": "40202",
    "country": "US",
}


def _adapter_delivery(server: SandboxServer) -> tuple[LanaProvider, Any]:
    d = delivery(
        order(
            billing_address=ADAPTER_ADDRESS,
            shipping_address=copy.deepcopy(ADAPTER_ADDRESS),
            lines=[{"sku": "TEE-BLUE-M", "quantity": 2, "options": {"Engraving": "JS"}}],
            coupon="SPRING10",
        ),
        provider="lana",
        settings={"shop_id": SHOP, "gateway_id": GATEWAY},
        catalog={"TEE-BLUE-M": {"variant_id": TEE}},
    )
    destination = Destination(
        provider="lana",
        secret_id="x",
        base_url=f"{server.url}/lana",
        settings={"shop_id": SHOP, "gateway_id": GATEWAY},
    )
    return LanaProvider(destination=destination), d


def test_adapter_end_to_end_create_search_and_drop(server):
    provider, d = _adapter_delivery(server)
    auth = provider.auth_headers({"token": TOKEN})
    sender = Sender(timeout=5)

    create = provider.build_create(d)
    bodies = [
        requests.Request(r.method, r.url, params=r.params, headers=r.headers, json=r.json).prepare().body
        for r in (create, provider.build_create(d))
    ]
    assert bodies[0] == bodies[1]  # the create stays byte-identical: the key's replay still helps

    response = sender.send(create, auth)
    assert isinstance(response, requests.Response)
    result = provider.parse_create(response)
    assert result.kind is ResultKind.SUCCEEDED, result
    assert result.provider_order_id and result.provider_order_id.startswith("or_")
    assert result.provider_reference == "1001"

    lookup = provider.build_lookup(d)
    assert lookup.url.endswith("/search/orders.json") and lookup.json != create.json
    searched = sender.send(lookup, auth)
    assert isinstance(searched, requests.Response)
    found = provider.parse_lookup(searched)
    assert found.kind is ResultKind.SUCCEEDED and found.provider_order_id == result.provider_order_id
    assert found.provider_reference == "1001"
    [kept] = sandbox_orders(server)
    assert kept["raw_body"].encode() == bodies[0]
    assert kept["headers"]["Idempotency-Key"] == LanaProvider.idempotency_key(d)
    # line properties go as tags (Lana's fields need a product field set)
    assert any(tag.startswith("line 1 Engraving: ") for tag in kept["order"]["tags"])

    # a connection dropped after the create: the pipeline's lookup (the tag search) finds it
    provider2, d2 = _adapter_delivery(server)
    set_fault(server, mode="drop_after_create")
    lost = sender.send(provider2.build_create(d2), auth)
    assert isinstance(lost, ProviderResult) and lost.unknown_result
    again = sender.send(provider2.build_lookup(d2), auth)
    assert isinstance(again, requests.Response)
    recovered = provider2.parse_lookup(again)
    assert recovered.kind is ResultKind.SUCCEEDED and recovered.provider_reference == "1002"
    assert len(sandbox_orders(server)) == 2

    # nothing created for a third delivery: not found
    provider3, d3 = _adapter_delivery(server)
    missing = sender.send(provider3.build_lookup(d3), auth)
    assert isinstance(missing, requests.Response)
    assert provider3.parse_lookup(missing).kind is ResultKind.NOT_FOUND


def _set_ttl(server: SandboxServer, seconds: float) -> None:
    r = requests.post(
        f"{server.url}/_sandbox/lana/config",
        json={"accounts": {SHOP: {"idempotency_ttl_seconds": seconds}}},
        timeout=5,
    )
    assert r.status_code == 200, r.text


def test_idempotency_key_is_forgotten_after_the_window(server):
    """Lana keeps a key for an unspecified, short time: after it the same request is a new order."""
    raw = json.dumps([{"line_items": [{"variant_id": TEE, "quantity": 1}], "tags": ["t"]}])
    _set_ttl(server, 0)
    try:
        first = post(server, raw, key="key-expiring")
        second = post(server, raw, key="key-expiring")
        assert first.status_code == second.status_code == 200
        assert first.json()[0]["id"] != second.json()[0]["id"]
        assert len(sandbox_orders(server)) == 2
    finally:
        _set_ttl(server, 60)
    # inside the window the identical retry is replayed
    third = post(server, raw, key="key-kept")
    assert post(server, raw, key="key-kept").json() == third.json()
    assert len(sandbox_orders(server)) == 3


def test_retry_after_the_replay_window_is_found_by_the_tag_search(server):
    """Drift guard: replaying the create as the lookup would make a second order once the key is
    forgotten; the adapter's lookup (the tag search) finds the first order instead."""
    provider, d = _adapter_delivery(server)
    auth = provider.auth_headers({"token": TOKEN})
    sender = Sender(timeout=5)
    set_fault(server, mode="drop_after_create")
    assert isinstance(sender.send(provider.build_create(d), auth), ProviderResult)
    _set_ttl(server, 0)  # Lana forgot the key (a DLQ redrive hours later)
    try:
        found = provider.parse_lookup(sender.send(provider.build_lookup(d), auth))
        assert found.kind is ResultKind.SUCCEEDED
        [kept] = sandbox_orders(server)
        assert found.provider_order_id == kept["order"]["id"]
        # what the old lookup (the create replayed) would have done now: a second order
        replayed = provider.parse_create(sender.send(provider.build_create(d), auth))
        assert replayed.kind is ResultKind.SUCCEEDED and replayed.provider_order_id != kept["order"]["id"]
        assert len(sandbox_orders(server)) == 2
        # and with two orders carrying the tag, the search parks the delivery for a person
        twice = provider.parse_lookup(sender.send(provider.build_lookup(d), auth))
        assert twice.kind is ResultKind.REVIEW and twice.error_code == "DUPLICATE_REFERENCE"
    finally:
        _set_ttl(server, 60)


def test_search_validates_its_options(server):
    url = f"{server.url}/lana/search/orders.json"
    params = {"shop_id": SHOP}
    post(server, json.dumps([{"line_items": [{"variant_id": TEE, "quantity": 1}], "tags": ["a", "b"]}]))
    ok = requests.post(
        url, params=params, headers=AUTH, json=[{"op": "eq", "name": "tags", "text": "a"}], timeout=5
    )
    assert ok.status_code == 200 and ok.json()["total"] == 1 and len(ok.json()["items"]) == 1
    none = requests.post(
        url, params=params, headers=AUTH, json=[{"op": "eq", "name": "tags", "text": "ab"}], timeout=5
    )
    assert none.json() == {"items": [], "total": 0}
    both = [
        {"op": "and", "parent_index": -1},
        {"op": "eq", "name": "tags", "text": "a", "parent_index": 0},
        {"op": "eq", "name": "tags", "text": "b", "parent_index": 0},
    ]
    assert requests.post(url, params=params, headers=AUTH, json=both, timeout=5).json()["total"] == 1
    bad = requests.post(
        url, params=params, headers=AUTH, json=[{"op": "like", "name": "tags", "text": "a"}], timeout=5
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 1000
    assert requests.post(url, params=params, json=[], timeout=5).status_code == 401


def test_adapter_reads_the_sandbox_errors(server):
    provider, d = _adapter_delivery(server)
    sender = Sender(timeout=5)
    refused = sender.send(provider.build_create(d), provider.auth_headers({"token": OTHER_TOKEN}))
    assert isinstance(refused, requests.Response)
    assert provider.parse_create(refused).kind is ResultKind.AUTH

    bad = provider.build_create(d)
    bad.json[0]["discount_code"] = "NOPE"
    result = provider.parse_create(sender.send(bad, provider.auth_headers({"token": TOKEN})))
    assert result.kind is ResultKind.PERMANENT and result.error_code == "LANA_1000"
    assert "0.discount_code" in (result.error_message or "")

    set_fault(server, mode="rate_limit", seconds=3)
    limited = provider.parse_create(
        sender.send(provider.build_create(d), provider.auth_headers({"token": TOKEN}))
    )
    assert limited.kind is ResultKind.RETRYABLE and limited.error_code == "LANA_429"
    assert limited.retry_after == 3
    assert sandbox_orders(server) == []


def test_line_fields_need_their_indexes_and_field_set(server):
    """Lana's types require `field_index`, `choice_index` and the line's `field_set_id` for each
    field: no default stands in for a missing one (the adapter sends properties as tags instead)."""
    body = order_create()
    body["line_items"][0]["fields"] = [{"label": "Engraving", "value": "JS", "type": "text"}]
    del body["line_items"][0]["field_set_id"]
    r = post(server, [body])
    assert r.status_code == 400
    problems = {f["field"] for f in r.json()["error"]["meta"]["fields"]}
    assert {
        "0.line_items.0.fields.0.field_index",
        "0.line_items.0.fields.0.choice_index",
        "0.line_items.0.field_set_id",
    } <= problems
