"""The Threekit sandbox over real HTTP: validation, auth, lookup, rate limits, faults and the adapter."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from orderbridge.models.config import Destination
from orderbridge.providers.base import Delivery, ProviderRequest, ResultKind
from orderbridge.providers.threekit import ThreekitProvider
from orderbridge_sandboxes import SandboxConfig, SandboxServer, serve
from tests.factories import delivery, order

REGISTRY = {"threekit": "orderbridge_sandboxes.threekit:ThreekitSandbox"}
ORG = "org-test-42"
OTHER_ORG = "org-other-7"
TOKEN = "tk-private-test-123"
PUBLIC_TOKEN = "tk-public-test-456"
OTHER_TOKEN = "tk-private-other-789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}

CONFIG_BLUE = "0b5a9a57-7f0e-4d8e-9d0a-2f6e3c1b7a11"
CONFIG_MUG = "6f1d2c3b-4a5e-4f60-8b7c-9d0e1f2a3b4c"
CONFIG_ELSEWHERE = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"  # a uuid the org does not have

CONFIG = SandboxConfig.model_validate(
    {
        "_comment": "comments are ignored",
        "threekit": {
            "accounts": {
                ORG: {
                    "token": TOKEN,
                    "public_tokens": [PUBLIC_TOKEN],
                    "configurations": [CONFIG_BLUE, CONFIG_MUG.upper()],
                },
                OTHER_ORG: {"token": OTHER_TOKEN},
            }
        },
    }
)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


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
    return f"{server.url}/threekit/api/orders"


def cart_order(ref: str = "shop-1001", **extra: Any) -> dict[str, Any]:
    return {
        "name": f"Order {ref}",
        "platform": {"id": ref, "platform": "shopify", "storeName": "Ada's Shop"},
        "metadata": {"campaign": "spring"},
        "cart": [
            {"configurationId": CONFIG_BLUE, "count": 2, "metadata": {"Colour": "Blue"}},
            {"configurationId": CONFIG_MUG, "count": 1},
        ],
        "status": "New",
        **extra,
    }


def post(
    server: SandboxServer, body: Any, *, headers: dict[str, str] | None = None, **kw: Any
) -> requests.Response:
    kw.setdefault("timeout", 5)
    return requests.post(orders_url(server), json=body, headers=AUTH if headers is None else headers, **kw)


def lookup(server: SandboxServer, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(
        orders_url(server), params=params, headers=AUTH if headers is None else headers, timeout=5
    )


def sandbox_orders(server: SandboxServer) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/_sandbox/threekit/orders", timeout=5)
    r.raise_for_status()
    return r.json()


def stats(server: SandboxServer) -> dict[str, Any]:
    return requests.get(f"{server.url}/_sandbox/threekit/stats", timeout=5).json()


def set_fault(server: SandboxServer, **fault: Any) -> None:
    requests.post(f"{server.url}/_sandbox/threekit/faults", json=fault, timeout=5).raise_for_status()


def assert_error(r: requests.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and isinstance(body["message"], str) and body["message"]
    return body


def assert_invalid(r: requests.Response, path: str) -> str:
    """A 400 whose details name `path`; returns that detail's message."""
    body = assert_error(r, 400)
    by_path = {d["path"]: d["message"] for d in body["details"]}
    assert path in by_path, body
    return by_path[path]


# --- creating orders ------------------------------------------------------------------------------


def test_valid_order_field_by_field(server):
    body = cart_order("shop-1", customerId="cust-7", orgId=ORG, derivative={"Finish": "Matte"})
    r = post(server, body)
    assert r.status_code == 200, r.text
    o = r.json()
    assert UUID_RE.match(o["id"])
    assert re.fullmatch(r"[A-Za-z0-9]{7}", o["shortId"])
    assert o["orgId"] == ORG and o["originOrgId"] == ORG
    assert o["customerId"] == "cust-7"
    assert o["name"] == "Order shop-1"
    assert o["platform"] == {"id": "shop-1", "platform": "shopify", "storeName": "Ada's Shop"}
    assert o["metadata"] == {"campaign": "spring"}
    assert o["cart"] == [
        {"configurationId": CONFIG_BLUE, "count": 2, "metadata": {"Colour": "Blue"}},
        {"configurationId": CONFIG_MUG, "count": 1, "metadata": None},
    ]
    assert o["items"] is None
    assert o["derivative"] == {"Finish": "Matte"}
    assert o["status"] == "New"
    assert ISO_RE.match(o["createdAt"]) and o["updatedAt"] == o["createdAt"]
    assert "Retry-After" not in r.headers

    [kept] = sandbox_orders(server)
    assert kept["account"] == ORG and kept["order"] == o
    assert kept["request"] == body
    assert kept["headers"]["Authorization"] == "<redacted>"
    assert TOKEN not in json.dumps(kept)


def test_optional_fields_default(server):
    o = post(server, {"cart": [{"configurationId": CONFIG_MUG, "count": 3}]}).json()
    assert o["status"] == "New"
    assert o["name"] is None and o["platform"] is None and o["customerId"] is None
    assert o["metadata"] == {} and o["derivative"] is None and o["originOrgId"] == ORG
    second = post(server, {"cart": [{"configurationId": CONFIG_MUG, "count": 1}]}).json()
    assert second["id"] != o["id"] and second["shortId"] != o["shortId"]


def test_public_token_in_the_query_works_and_never_reaches_the_log(server):
    r = requests.post(
        orders_url(server), params={"bearer_token": PUBLIC_TOKEN}, json=cart_order("pub-1"), timeout=5
    )
    assert r.status_code == 200, r.text
    assert r.json()["orgId"] == ORG
    found = requests.get(
        orders_url(server), params={"bearer_token": PUBLIC_TOKEN, "shortId": r.json()["shortId"]}, timeout=5
    )
    assert found.status_code == 200 and [o["id"] for o in found.json()["orders"]] == [r.json()["id"]]
    log = requests.get(f"{server.url}/_sandbox/threekit/requests", timeout=5).json()
    assert log and all("bearer_token=%3Credacted%3E" in e["path"] for e in log)
    assert PUBLIC_TOKEN not in json.dumps(log)
    config = requests.get(f"{server.url}/_sandbox/threekit/config", timeout=5).text
    assert PUBLIC_TOKEN not in config and TOKEN not in config
    # a public token in the header works too
    assert post(server, cart_order(), headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"}).status_code == 200


# --- validation -----------------------------------------------------------------------------------


def test_name_255_passes_256_is_refused(server):
    assert post(server, cart_order(name="n" * 255)).json()["name"] == "n" * 255
    message = assert_invalid(post(server, cart_order(name="n" * 256)), "name")
    assert "255" in message
    assert len(sandbox_orders(server)) == 1


@pytest.mark.parametrize(
    ("count", "problem"),
    [
        (0, "greater than or equal to 1"),
        (-1, "greater than or equal to 1"),
        (1.5, "integer"),
        ("2", "integer"),
    ],
)
def test_count_below_1_or_not_an_integer_is_refused(server, count, problem):
    body = cart_order(cart=[{"configurationId": CONFIG_BLUE, "count": count}])
    assert problem in assert_invalid(post(server, body), "cart[0].count")
    assert sandbox_orders(server) == []


def test_count_1_passes_and_missing_count_is_required(server):
    assert post(server, cart_order(cart=[{"configurationId": CONFIG_BLUE, "count": 1}])).status_code == 200
    body = cart_order(cart=[{"configurationId": CONFIG_BLUE}])
    assert "required" in assert_invalid(post(server, body), "cart[0].count")


def test_configuration_must_be_a_uuid_of_the_org(server):
    unknown = cart_order(cart=[{"configurationId": CONFIG_ELSEWHERE, "count": 1}])
    assert "not a configuration" in assert_invalid(post(server, unknown), "cart[0].configurationId")
    not_uuid = cart_order(cart=[{"configurationId": "blue-tee", "count": 1}])
    assert "GUID" in assert_invalid(post(server, not_uuid), "cart[0].configurationId")
    # configured in upper case, sent in lower case: the same uuid
    assert post(server, cart_order(cart=[{"configurationId": CONFIG_MUG, "count": 1}])).status_code == 200
    # an org without a configuration list accepts any uuid
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    r = post(server, cart_order(cart=[{"configurationId": CONFIG_ELSEWHERE, "count": 1}]), headers=other)
    assert r.status_code == 200 and r.json()["orgId"] == OTHER_ORG


@pytest.mark.parametrize("status", ["List", "In Cart", "New", "In Progress", "Complete"])
def test_every_status_of_the_enum_is_accepted(server, status):
    r = post(server, cart_order(status=status))
    assert r.status_code == 200 and r.json()["status"] == status


@pytest.mark.parametrize("status", ["Shipped", "new", "", None, 3])
def test_status_outside_the_enum_is_refused(server, status):
    message = assert_invalid(post(server, cart_order(status=status)), "status")
    assert "List, In Cart, New, In Progress, Complete" in message


def test_status_defaults_to_new(server):
    body = cart_order()
    del body["status"]
    assert post(server, body).json()["status"] == "New"


def test_deprecated_items_are_converted_to_cart(server):
    items = [{"configurationId": CONFIG_BLUE, "count": 2}]
    body = {"name": "legacy", "items": items}
    o = post(server, body).json()
    assert o["cart"] == [{"configurationId": CONFIG_BLUE, "count": 2, "metadata": None}]
    assert o["items"] == items  # still populated with the incoming data
    # converted items are validated like a cart
    bad = {"items": [{"configurationId": CONFIG_BLUE, "count": 0}]}
    assert_invalid(post(server, bad), "items[0].count")
    # items in another format are left untouched: there is no cart
    assert "required" in assert_invalid(post(server, {"items": {CONFIG_BLUE: 2}}), "cart")
    # cart wins over items
    both = post(server, cart_order(items=[{"whatever": True}])).json()
    assert len(both["cart"]) == 2 and both["items"] == [{"whatever": True}]


def _without_cart() -> dict[str, Any]:
    body = cart_order()
    del body["cart"]
    return body


INVALID = {
    "missing cart": (_without_cart(), "cart"),
    "empty cart": (cart_order(cart=[]), "cart"),
    "cart not an array": (cart_order(cart={"configurationId": CONFIG_BLUE}), "cart"),
    "cart entry not an object": (cart_order(cart=["x"]), "cart[0]"),
    "cart entry unknown field": (
        cart_order(cart=[{"configurationId": CONFIG_BLUE, "count": 1, "quantity": 1}]),
        "cart[0].quantity",
    ),
    "cart metadata not an object": (
        cart_order(cart=[{"configurationId": CONFIG_BLUE, "count": 1, "metadata": "x"}]),
        "cart[0].metadata",
    ),
    "name not a string": (cart_order(name=12), "name"),
    "platform not an object": (cart_order(platform="shopify"), "platform"),
    "platform id not a string": (cart_order(platform={"id": 1001, "platform": "shopify"}), "platform.id"),
    "platform unknown field": (cart_order(platform={"id": "a", "storename": "x"}), "platform.storename"),
    "metadata not an object": (cart_order(metadata=["a"]), "metadata"),
    "derivative not an object": (cart_order(derivative="Matte"), "derivative"),
    "customerId not a string": (cart_order(customerId=7), "customerId"),
    "unknown field": (cart_order(shortId="abc1234"), "shortId"),
    "not an object": ([cart_order()], "value"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_orders_get_400_with_details(server, case):
    body, path = INVALID[case]
    assert_invalid(post(server, body), path)
    assert sandbox_orders(server) == []


def test_every_problem_is_reported(server):
    body = cart_order(name="n" * 300, status="Done", cart=[{"configurationId": "x", "count": 0}])
    details = assert_error(post(server, body), 400)["details"]
    assert {d["path"] for d in details} == {"name", "status", "cart[0].configurationId", "cart[0].count"}


def test_json_only(server):
    r = requests.post(
        orders_url(server), data="name=x", headers={**AUTH, "Content-Type": "text/plain"}, timeout=5
    )
    assert_error(r, 415)
    r = requests.post(
        orders_url(server), data="{nope", headers={**AUTH, "Content-Type": "application/json"}, timeout=5
    )
    assert_error(r, 400)
    assert sandbox_orders(server) == []


# --- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_bad_or_missing_token_is_401(server, headers):
    r = post(server, cart_order(), headers=headers)
    assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
    assert lookup(server, headers=headers).status_code == 401
    assert sandbox_orders(server) == []


def test_bad_query_token_is_401(server):
    r = requests.post(orders_url(server), params={"bearer_token": "nope"}, json=cart_order(), timeout=5)
    assert r.status_code == 401


def test_org_id_must_be_the_token_org(server):
    r = post(server, cart_order(orgId=OTHER_ORG))
    assert r.status_code == 403 and OTHER_ORG in r.json()["message"]
    # the other org's token does not open this org either
    r = post(server, cart_order(orgId=ORG), headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert r.status_code == 403
    assert sandbox_orders(server) == []
    assert post(server, cart_order(orgId=ORG)).status_code == 200
    assert lookup(server, orgId=OTHER_ORG).status_code == 403


# --- lookup ---------------------------------------------------------------------------------------


def test_lookup_by_platform_json_finds_exactly_that_order(server):
    a = post(server, cart_order("ref-a")).json()
    b = post(server, cart_order("ref-b")).json()
    r = lookup(server, platform=json.dumps(a["platform"]))
    assert r.status_code == 200
    body = r.json()
    assert [o["id"] for o in body["orders"]] == [a["id"]]
    assert body["count"] == 1 and body["page"] == 1 and body["perPage"] == 100
    # whole-object match: the object the create sent, key order irrelevant
    reordered = dict(reversed(list(b["platform"].items())))
    full = lookup(server, platform=json.dumps(reordered), orgId=ORG).json()
    assert [o["id"] for o in full["orders"]] == [b["id"]]
    # a partial object (only the id) or a different value matches nothing
    empty = {"orders": [], "count": 0, "page": 1, "perPage": 100, "sort": "-createdAt"}
    assert lookup(server, platform=json.dumps({"id": "ref-a"})).json() == empty
    mixed = lookup(server, platform=json.dumps({**a["platform"], "storeName": "Other Shop"})).json()
    assert mixed == empty
    extra = lookup(server, platform=json.dumps({**a["platform"], "channel": "web"})).json()
    assert extra == empty
    missing = {**a["platform"], "id": "ref-missing"}
    assert lookup(server, platform=json.dumps(missing)).json()["orders"] == []
    # no filter: every order of the org, newest first; another org sees none of them
    assert [o["id"] for o in lookup(server).json()["orders"]] == [b["id"], a["id"]]
    other = lookup(server, headers={"Authorization": f"Bearer {OTHER_TOKEN}"}).json()
    assert other["orders"] == [] and other["count"] == 0


def test_lookup_paging_and_bad_parameters(server):
    ids = [post(server, cart_order(f"p-{i}")).json()["id"] for i in range(3)]
    page2 = lookup(server, page=2, perPage=2).json()
    assert [o["id"] for o in page2["orders"]] == [ids[0]] and page2["count"] == 3
    assert_invalid(lookup(server, platform="{not json"), "platform")
    assert_invalid(lookup(server, platform='["a"]'), "platform")
    assert_invalid(lookup(server, perPage=101), "perPage")
    assert_invalid(lookup(server, page="x"), "page")


def test_get_by_id_and_by_short_id(server):
    o = post(server, cart_order("ref-get")).json()
    by_id = requests.get(f"{orders_url(server)}/{o['id']}", headers=AUTH, timeout=5)
    by_short = requests.get(f"{orders_url(server)}/{o['shortId']}", headers=AUTH, timeout=5)
    assert by_id.status_code == by_short.status_code == 200
    assert by_id.json() == by_short.json() == o
    missing = requests.get(f"{orders_url(server)}/{uuid.uuid4()}", headers=AUTH, timeout=5)
    assert missing.status_code == 404 and missing.json() == {"message": "Not found"}
    other = requests.get(
        f"{orders_url(server)}/{o['id']}", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}, timeout=5
    )
    assert other.status_code == 404


# --- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_per_org_then_429_with_retry_after(server):
    r = requests.post(
        f"{server.url}/_sandbox/threekit/config",
        json={"accounts": {ORG: {"rate_limit": {"quota": 3, "window_ms": 60000}}}},
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["effective_rate_limits"][ORG]["quota"] == 3
    assert r.json()["effective_rate_limits"][OTHER_ORG]["quota"] == 100  # the default
    for i in range(3):
        assert post(server, cart_order(f"rl-{i}")).status_code == 200
    limited = post(server, cart_order("rl-3"))
    assert_error(limited, 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert lookup(server).status_code == 429  # reads count too
    assert stats(server)["rate_limited"] == 2 and stats(server)["creates"] == 3
    # another org has its own window
    other = lookup(server, headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert other.status_code == 200


# --- faults ---------------------------------------------------------------------------------------


def test_error_500_once_then_ok(server):
    set_fault(server, mode="error_500", count=1)
    assert_error(post(server, cart_order("f-500")), 500)
    assert sandbox_orders(server) == []
    assert post(server, cart_order("f-500")).status_code == 200


def test_rate_limit_faults_with_and_without_retry_after(server):
    set_fault(server, mode="rate_limit", seconds=2)
    r = post(server, cart_order())
    assert_error(r, 429)
    assert r.headers["Retry-After"] == "2"
    server.sandbox.set_fault("threekit", "rate_limit_no_header")
    r = post(server, cart_order())
    assert_error(r, 429)
    assert "Retry-After" not in r.headers
    assert post(server, cart_order()).status_code == 200
    assert stats(server)["rate_limited"] == 2


def test_faults_apply_to_creates_unless_scope_all(server):
    set_fault(server, mode="error_500", count=2)
    assert lookup(server).status_code == 200  # not a create
    assert requests.get(f"{server.url}/_sandbox/threekit/faults", timeout=5).json()["fault"]["count"] == 2
    set_fault(server, mode="error_500", scope="all")
    assert lookup(server).status_code == 500
    assert post(server, cart_order()).status_code == 200


def test_faults_need_an_accepted_token(server):
    set_fault(server, mode="error_500")
    assert post(server, cart_order(), headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(server, cart_order()).status_code == 500


def test_timeout_fault_makes_the_client_give_up_yet_creates_the_order(server):
    set_fault(server, mode="timeout", seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        post(server, cart_order("f-slow"), timeout=0.3)
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 5
    while not sandbox_orders(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [o["order"]["platform"]["id"] for o in sandbox_orders(server)] == ["f-slow"]
    assert post(server, cart_order("f-fast"), timeout=0.5).status_code == 200


def test_drop_after_create_loses_the_answer_but_keeps_the_order(server):
    set_fault(server, mode="drop_after_create")
    assert_invalid(post(server, cart_order(status="Done")), "status")  # no order, no drop
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(server, cart_order("f-drop"))
    [kept] = sandbox_orders(server)
    found = lookup(server, platform=json.dumps(kept["order"]["platform"])).json()["orders"]
    assert [o["id"] for o in found] == [kept["order"]["id"]]
    assert post(server, cart_order("f-after")).status_code == 200
    assert stats(server)["counters"]["dropped"] == 1 and stats(server)["creates"] == 2


# --- the real adapter against the sandbox ---------------------------------------------------------

SETTINGS = {"org_id": ORG, "store_name": "Ada's Shop", "platform": "shopify"}
CATALOG = {"TEE-BLUE-M": {"configurationId": CONFIG_BLUE}, "MUG-001": {"configuration_id": CONFIG_MUG}}


def _delivery(server: SandboxServer) -> Delivery:
    d = delivery(
        order(
            lines=[
                {"sku": "TEE-BLUE-M", "quantity": 2, "options": {"Colour": "Blue", "Size": "M"}},
                {"sku": "MUG-001", "quantity": 1},
            ],
            metadata={"campaign": "spring"},
        ),
        provider="threekit",
        settings=SETTINGS,
        catalog=CATALOG,
    )
    destination = Destination(
        provider="threekit", secret_id="x", base_url=f"{server.url}/threekit", settings=SETTINGS
    )
    return dataclasses.replace(d, destination=destination)


def _send(provider: ThreekitProvider, req: ProviderRequest) -> requests.Response:
    headers = {**provider.auth_headers({"token": TOKEN}), **req.headers}
    return requests.request(req.method, req.url, json=req.json, params=req.params, headers=headers, timeout=5)


def test_adapter_end_to_end_create_then_lookup(server):
    d = _delivery(server)
    provider = ThreekitProvider(destination=d.destination)
    created = provider.parse_create(_send(provider, provider.build_create(d)))
    assert created.kind is ResultKind.SUCCEEDED, created
    assert created.provider_order_id and created.provider_reference
    [kept] = sandbox_orders(server)
    assert kept["order"]["id"] == created.provider_order_id
    assert kept["order"]["shortId"] == created.provider_reference
    assert kept["order"]["platform"]["id"] == d.tracking_id
    assert kept["order"]["metadata"]["orderbridge_tracking_id"] == d.tracking_id

    req = provider.build_lookup(d)
    assert req is not None
    found = provider.parse_lookup(_send(provider, req))
    assert found.kind is ResultKind.SUCCEEDED, found
    assert found.provider_order_id == created.provider_order_id
    assert found.provider_reference == created.provider_reference

    other = _delivery(server)  # a new tracking id: nothing was created for it
    req = provider.build_lookup(other)
    assert req is not None
    assert provider.parse_lookup(_send(provider, req)).kind is ResultKind.NOT_FOUND


def test_adapter_lookup_sends_exactly_the_platform_object_the_create_sent(server):
    """Drift guard: under whole-object matching only the create's own object finds the order."""
    d = _delivery(server)
    provider = ThreekitProvider(destination=d.destination)
    create = provider.build_create(d)
    assert provider.parse_create(_send(provider, create)).kind is ResultKind.SUCCEEDED
    lookup_req = provider.build_lookup(d)
    assert json.loads(lookup_req.params["platform"]) == create.json["platform"]
    assert provider.parse_lookup(_send(provider, lookup_req)).kind is ResultKind.SUCCEEDED
    # what the adapter used to send (the id alone) misses on a whole-object server
    partial = dataclasses.replace(
        lookup_req, params={**lookup_req.params, "platform": json.dumps({"id": d.tracking_id})}
    )
    assert provider.parse_lookup(_send(provider, partial)).kind is ResultKind.NOT_FOUND
    [kept] = sandbox_orders(server)
    assert kept["order"]["platform"] == create.json["platform"]


def test_adapter_reads_sandbox_errors(server):
    d = _delivery(server)
    provider = ThreekitProvider(destination=d.destination)
    set_fault(server, mode="rate_limit", seconds=3)
    limited = provider.parse_create(_send(provider, provider.build_create(d)))
    assert limited.kind is ResultKind.RETRYABLE and limited.retry_after == 3
    assert limited.error_message == "Too many requests, please try again later."
    wrong_org = dataclasses.replace(
        d, destination=d.destination.model_copy(update={"settings": {**SETTINGS, "org_id": OTHER_ORG}})
    )
    p2 = ThreekitProvider(destination=wrong_org.destination)
    assert p2.parse_create(_send(p2, p2.build_create(wrong_org))).kind is ResultKind.AUTH
    assert sandbox_orders(server) == []
