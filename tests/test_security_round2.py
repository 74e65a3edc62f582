"""Issue 16, second round: what the body says an order is, deep form names, redirects, id formats.

Each threat is met where a user (or an attacker) would meet it: through the running local system
(`harness`: moto, the sandboxes, the real intake handler behind the local API Gateway).
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from orderbridge.intake import mapping
from orderbridge.intake import service as intake_service
from orderbridge.intake.signatures import sign_shopify
from orderbridge.providers import komerza
from tests.factories import form_post

SHOPIFY_SECRET = "shpss_local_demo_secret"
JSON = {"Content-Type": "application/json"}
FORM_URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}
DEMO_FORM = "/forms/fk_demo0001"
CHECKOUT_FORM = "/forms/fk_komerza01"
SCRIPT = Path(__file__).parents[1] / "layers/orderbridge/orderbridge/storefront/static/orderbridge-form.js"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The intake service's log at DEBUG, captured as the Lambda would write it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter())
    target = intake_service.logger
    previous = target.log_level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)


# --- 1. a draft order's body under an order topic ----------------------------------------------


def _shopify_order(**extra: Any) -> dict[str, Any]:
    return {
        "id": int(time.time() * 1_000_000),
        "email": "ada@example.com",
        "currency": "EUR",
        "billing_address": {
            "first_name": "Ada",
            "last_name": "L",
            "address1": "Ring 1",
            "city": "Vienna",
            "zip": "1010",
            "country_code": "AT",
        },
        "line_items": [{"sku": "TEE-BLUE-L", "title": "Tee", "quantity": 1, "price": "25.00"}],
    } | extra


def _deliver(harness: Any, payload: dict[str, Any], topic: str = "orders/create") -> requests.Response:
    body = json.dumps(payload).encode()
    headers = {
        **JSON,
        "X-Shopify-Topic": topic,
        "X-Shopify-Event-Id": f"ev-{uuid.uuid4().hex}",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
    }
    return harness.post("/webhooks/shopify-demo", body, headers)


DRAFT_SHAPES = [  # Shopify REST Admin API DraftOrder fields an Order never has
    {"invoice_url": "https://shop.example/1/invoices/abc", "status": "open", "order_id": None},
    {"status": "invoice_sent", "invoice_sent_at": "2024-05-01T10:00:00Z"},
    {"status": "completed", "completed_at": "2024-05-01T10:00:00Z", "order_id": 4501},
    {"reserve_inventory_until": None},
    {"status": "open"},
]


@pytest.mark.parametrize("draft", DRAFT_SHAPES)
def test_a_signed_draft_order_body_under_the_orders_create_topic_is_ignored(harness, draft):
    before = len(harness.sandbox_orders())
    r = _deliver(harness, _shopify_order(**draft))
    assert r.status_code == 200 and r.json() == {"ignored": True}, r.text
    harness.drain()
    assert len(harness.sandbox_orders()) == before  # no provider order


def test_the_same_body_without_the_draft_fields_is_an_order(harness):
    r = _deliver(harness, _shopify_order())
    assert r.status_code == 202 and r.json()["tracking_id"].startswith("ob_"), r.text
    harness.drain(until=harness.final(r.json()["tracking_id"]))
    assert len(harness.orders_with_reference(r.json()["tracking_id"])) == 1


def test_draft_order_recognition_follows_the_resources():
    assert not mapping.is_draft_order(_shopify_order(financial_status="paid", order_number=1001))
    assert not mapping.is_draft_order([])
    for draft in DRAFT_SHAPES:
        assert mapping.is_draft_order(_shopify_order(**draft))


# --- 4. unbounded nesting in urlencoded forms ------------------------------------------------------


def _deep_form(levels: int) -> str:
    return "email=a%40b.c&x" + "[a]" * levels + "=1"


@pytest.mark.parametrize("path", [DEMO_FORM, DEMO_FORM + "/submit"])
def test_deeply_nested_urlencoded_field_names_are_a_400_even_at_debug(harness, debug_log, path):
    body = _deep_form(11_000)  # about 35 KB, under the 64 KiB form cap
    assert 30_000 < len(body) < 64 * 1024
    headers = {**FORM_URLENCODED, "Accept": "application/json"}
    r = harness.post(path, body, headers)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "MALFORMED_BODY"
    # the page's own plain post (no script) gets the form again, not a crash
    plain = harness.post(DEMO_FORM + "/submit", body, {**FORM_URLENCODED, "Accept": "text/html"})
    assert plain.status_code == 400 and "<form" in plain.text


def test_form_field_names_nest_at_most_four_levels():
    assert mapping.parse_urlencoded("items[0][sku]=S&address[city]=X") == {
        "items": {"0": {"sku": "S"}},
        "address": {"city": "X"},
    }
    assert mapping.parse_urlencoded("a[b][c][d]=1") == {"a": {"b": {"c": {"d": "1"}}}}
    with pytest.raises(ValueError):
        mapping.parse_urlencoded("a[b][c][d][e]=1")
    with pytest.raises(ValueError):
        mapping.parse_urlencoded("a" * 201 + "=1")


def test_a_rejected_urlencoded_form_at_debug_is_logged_masked_and_answered(harness, debug_log):
    body = urlencode(
        {
            "submission_id": uuid.uuid4().hex,
            "email": "not-an-email",
            "items[0][sku]": "TEE-BLUE-M",
            "items[0][quantity]": "0",
        }
    )
    r = harness.post(DEMO_FORM, body, FORM_URLENCODED)
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert "order failed validation" in debug_log.getvalue()


# --- 6. an untrusted value in a redirect ------------------------------------------------------------

HOSTILE_IDS = [
    "../../evil.example/x",
    "5b0b6c2e-1111-4222-8333-944455556666?next=https://evil.example",
    "5b0b6c2e-1111-4222-8333-944455556666\r\nSet-Cookie: a=b",
    "5b0b6c2e-1111-4222-8333-944455556666/../../admin",
    "//evil.example",
    "",
]


@pytest.mark.parametrize("order_id", HOSTILE_IDS)
def test_a_komerza_order_id_that_is_not_a_uuid_gives_no_checkout_url(order_id):
    assert komerza.checkout_order_id(order_id) is None
    provider = komerza.KomerzaProvider(destination=_komerza_destination())
    if order_id:
        assert provider._checkout_url(order_id) is None


def test_a_uuid_order_id_goes_into_the_checkout_url_as_it_is():
    provider = komerza.KomerzaProvider(destination=_komerza_destination())
    oid = "5b0b6c2e-1111-4222-8333-944455556666"
    assert komerza.checkout_order_id(oid) == oid
    assert provider._checkout_url(oid) == f"https://checkout.komerza.com/{oid}"


def _komerza_destination() -> Any:
    from orderbridge.models.config import Destination

    return Destination.model_validate(
        {
            "provider": "komerza",
            "secret_id": "orderbridge/providers/komerza-test",
            "settings": {
                "store_id": "0b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e5f",
                "gateway": "stripe",
                "checkout_url_template": "https://checkout.komerza.com/{order_id}",
            },
        }
    )


def test_a_hostile_provider_order_id_never_reaches_the_buyers_redirect(harness, monkeypatch):
    """Komerza answers a create with an id that is not a uuid: the order exists, no redirect is built."""
    original = komerza.KzOrder.model_validate

    def hostile(data: Any, *a: Any, **kw: Any) -> Any:
        order = original(data, *a, **kw)
        order.id = "../../evil.example/pay?x=1\r\nSet-Cookie: a=b"
        return order

    monkeypatch.setattr(komerza.KzOrder, "model_validate", hostile)
    r = harness.post(CHECKOUT_FORM, json.dumps(form_post()), JSON)
    assert r.status_code == 202 and "redirect_url" not in r.json(), r.text
    [outcome] = harness.outcomes(r.json()["tracking_id"])
    assert outcome.redirect_url is None


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/komerza/checkout/5b0b6c2e-1111-4222-8333-944455556666",
        "javascript:alert(1)",
        "http://checkout.komerza.com/5b0b6c2e-1111-4222-8333-944455556666",
    ],
)
def test_the_intake_answers_no_redirect_outside_the_providers_checkout(harness, monkeypatch, url):
    """Whatever the adapter records, the buyer is sent only to the configured checkout page."""
    monkeypatch.setattr(komerza.KomerzaProvider, "_checkout_url", lambda self, order_id: url)
    answer = harness.post(CHECKOUT_FORM, json.dumps(form_post()), JSON)
    assert answer.status_code == 202 and "redirect_url" not in answer.json(), answer.text
    tracking_id = answer.json()["tracking_id"]
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.redirect_url == url  # recorded as the adapter gave it ...
    for path in (f"/orders/{tracking_id}", f"{CHECKOUT_FORM}/orders/{tracking_id}"):
        status = harness.get(path).json()
        assert [d["redirect_url"] for d in status["destinations"]] == [None]  # ... never answered
    page = harness.get(f"{CHECKOUT_FORM}/confirmation/{tracking_id}")
    assert page.status_code == 200 and url not in page.text and "ob-pay" not in page.text
    # a plain post (no script) lands on the confirmation page, not on the URL
    plain = requests.post(
        f"{harness.api}{CHECKOUT_FORM}/submit",
        data=urlencode(
            {
                "submission_id": uuid.uuid4().hex,
                "email": "grace@example.com",
                "first_name": "Grace",
                "last_name": "Hopper",
                "address[address1]": "1 Navy Yard",
                "address[city]": "Arlington",
                "address[province]": "VA",
                "address[zip]": "22202",
                "address[country]": "US",
                "items[0][sku]": "TEE-BLUE-M",
                "items[0][quantity]": "1",
            }
        ),
        headers=FORM_URLENCODED,
        allow_redirects=False,
        timeout=30,
    )
    assert plain.status_code == 303 and plain.headers["Location"].startswith("confirmation/ob_")


def test_the_sandbox_checkout_redirect_is_still_answered(harness):
    r = harness.post(CHECKOUT_FORM, json.dumps(form_post()), JSON)
    assert r.status_code == 200, r.text
    assert re.fullmatch(
        re.escape(harness.sandbox) + r"/komerza/checkout/[0-9a-f-]{36}", r.json()["redirect_url"]
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_embed_script_follows_only_http_and_https_urls():
    source = SCRIPT.read_text("utf-8")
    fn = re.search(r"function webUrl\(value\) \{.*?\n  \}\n", source, re.S)
    assert fn, "webUrl is gone from the script"
    cases = {
        "https://pay.example/x": "https://pay.example/x",
        "http://127.0.0.1:4010/komerza/checkout/a": "http://127.0.0.1:4010/komerza/checkout/a",
        "javascript:alert(1)": None,
        "JaVaScRiPt:alert(1)": None,
        "data:text/html,<script>alert(1)</script>": None,
        "/relative": None,
        "": None,
    }
    program = fn.group(0) + f"console.log(JSON.stringify({json.dumps(list(cases))}.map(webUrl)));"
    out = subprocess.run(["node", "-e", program], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout) == list(cases.values())


# --- 8. status routes check the tracking id's format first ------------------------------------------

MALFORMED_TRACKING_IDS = [
    "ob_" + "a" * 31,
    "ob_" + "a" * 33,
    "ob_" + "A" * 32,
    "ob_" + "g" * 32,
    "OB_" + "a" * 32,
    "msg_0b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e5f",  # fixed: pytest-xdist workers must collect the same ids
    "x" * 3000,  # over DynamoDB's 2,048-byte key limit
    "ob_" + "a" * 32 + "%0d%0a",
]


@pytest.fixture
def lookups(harness, monkeypatch) -> list[str]:
    """Every outcome-table read the intake makes for a status route."""
    service = harness.system.intake.service
    calls: list[str] = []
    real = service.outcomes.get

    def counting(tracking_id: str, *a: Any, **kw: Any) -> Any:
        calls.append(tracking_id)
        return real(tracking_id, *a, **kw)

    monkeypatch.setattr(service.outcomes, "get", counting)
    return calls


@pytest.mark.parametrize("tracking_id", MALFORMED_TRACKING_IDS)
def test_status_routes_answer_404_for_a_malformed_tracking_id_without_a_lookup(harness, lookups, tracking_id):
    for path in (f"/orders/{tracking_id}", f"{DEMO_FORM}/orders/{tracking_id}"):
        r = harness.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", (path[:80], r.text)
    page = harness.get(f"{DEMO_FORM}/confirmation/{tracking_id}")
    assert page.status_code == 404
    if "%" not in tracking_id:  # an encoded CR/LF matches no route at all: the router's 404
        assert "Order not found" in page.text
    assert lookups == []


def test_a_well_formed_unknown_tracking_id_is_looked_up_and_not_found(harness, lookups):
    tracking_id = "ob_" + uuid.uuid4().hex
    r = harness.get(f"/orders/{tracking_id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    assert lookups == [tracking_id]


# --- allowed origins are origins, written any way ----------------------------------------------------


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("HTTPS://Shop.Example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://localhost:8000", "http://localhost:8000"),
    ],
)
def test_allowed_origins_are_kept_as_browsers_send_them(written, kept):
    from orderbridge.models.config import FormConfig

    form = FormConfig(route="default", source="s", allowed_origins=[written])
    assert form.allowed_origins == [kept]


@pytest.mark.parametrize("bad", ["https://shop.example/checkout", "shop.example", "ftp://shop.example", "*"])
def test_an_allowed_origin_that_is_not_an_origin_is_a_configuration_error(bad):
    from pydantic import ValidationError

    from orderbridge.models.config import FormConfig

    with pytest.raises(ValidationError, match="is not an origin"):
        FormConfig(route="default", source="s", allowed_origins=[bad])


def test_a_capitalised_or_slashed_origin_in_the_configuration_still_admits_the_browser(harness):
    config = harness.system.local_config()
    config["forms"]["fk_demo0001"]["allowed_origins"] = ["HTTP://LocalHost:8000/"]
    harness.system.upload_config(config)  # the functions of this process read it on their next call
    try:
        body = json.dumps(
            {
                "submission_id": uuid.uuid4().hex,
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "address": {"address1": "1 Main St", "city": "Austin", "zip": "78701", "country": "US"},
                "items": [{"sku": "MUG-001", "quantity": 1}],
            }
        )
        r = harness.post(
            "/forms/fk_demo0001",
            body,
            {"Content-Type": "application/json", "Origin": "http://localhost:8000"},
        )
        assert r.status_code == 202, r.text
        assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
        # the status_url carries the stage, and the local API answers under it as API Gateway does
        status_url = r.json()["status_url"]
        assert status_url.startswith("/v1/orders/ob_")
        assert harness.get(status_url).status_code == 200
    finally:
        harness.system.upload_config()
