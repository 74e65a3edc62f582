"""Bodies over the size caps: a signed webhook is never refused for its size, every 413 is logged.

Found by a tester: a signed Shopify order over MAX_BODY_BYTES (2 MiB) was answered 413 with no
record and no log line; Shopify retried, then dropped the subscription, and the order was gone
without trace. Now the signature is checked first: a signed body is taken (up to
MAX_SIGNED_BODY_BYTES, 6 MiB, the memory cap) or, over that, recorded FAILED / BODY_TOO_LARGE and
answered 202; only an unsigned or forged one is 413, and every 413 is logged at WARNING with the
way in and the size, never the body. Everything goes through the running local system (`harness`).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from orderbridge.exceptions import SettingsError
from orderbridge.intake import service as intake_service
from orderbridge.intake.signatures import sign_shopify
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.settings import IntakeEnvironment
from orderbridge.settings import default as setting_default

SHOPIFY_SECRET = "shpss_local_demo_secret"
SOURCE = "shopify-demo"
FORM_KEY = "fk_demo0001"
MAX_BODY = setting_default(IntakeEnvironment, "max_body_bytes")
MAX_SIGNED_BODY = setting_default(IntakeEnvironment, "max_signed_body_bytes")
SKUS = ("TEE-BLUE-M", "TEE-BLUE-L", "MUG-001")  # the demo route's catalog
# What the storefront app stored on the order: never to appear in a log line.
MARKER = "design-data-never-logged"


@pytest.fixture
def warnings_log() -> Iterator[io.StringIO]:
    """The intake service's log lines at WARNING and above, as the Lambda would write them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter())
    handler.setLevel(logging.WARNING)
    target = intake_service.logger
    target.addHandler(handler)
    try:
        yield stream
    finally:
        target.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _line_item(n: int) -> dict[str, Any]:
    """One line as Shopify's REST Admin API order carries it (most fields unmapped)."""
    sku = SKUS[n % len(SKUS)]
    money = {"amount": "15.00", "currency_code": "EUR"}
    return {
        "id": 13_000_000_000 + n,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{13_000_000_000 + n}",
        "sku": sku,
        "title": "Blue tee" if sku.startswith("TEE") else "Mug",
        "name": f"{sku} - line {n}",
        "quantity": 1,
        "price": "15.00",
        "price_set": {"shop_money": money, "presentment_money": money},
        "total_discount": "0.00",
        "total_discount_set": {"shop_money": money | {"amount": "0.00"}, "presentment_money": money},
        "product_id": 7_000_000 + n % 3,
        "variant_id": 8_000_000 + n % 3,
        "vendor": "orderbridge demo",
        "fulfillment_service": "manual",
        "fulfillment_status": None,
        "requires_shipping": True,
        "taxable": True,
        "gift_card": False,
        "grams": 200,
        "discount_allocations": [],
        "duties": [],
        "tax_lines": [],
        "properties": [],
    }


def big_shopify_order(size: int, lines: int = 300) -> bytes:
    """A Shopify `orders/create` body of about `size` bytes: `lines` lines of demo SKUs, and the
    rest in `note_attributes` (a storefront app's stored design data, which the mapping ignores)."""
    order: dict[str, Any] = {
        "id": int(time.time() * 1_000_000) + uuid.uuid4().int % 1000,
        "name": "#9001",
        "email": "linus@example.com",
        "currency": "EUR",
        "billing_address": {
            "first_name": "Linus",
            "last_name": "T",
            "address1": "Kaivokatu 1",
            "city": "Helsinki",
            "zip": "00100",
            "country_code": "FI",
        },
        "line_items": [_line_item(n) for n in range(lines)],
        "note_attributes": [],
    }
    base = len(json.dumps(order).encode())
    chunk = 60_000
    for i in range(max(0, size - base) // chunk + 1):
        order["note_attributes"].append({"name": f"_design_{i}", "value": (MARKER + "-") * (chunk // 25)})
    return json.dumps(order).encode()


def shopify_headers(body: bytes, secret: str = SHOPIFY_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Webhook-Id": f"wh-{uuid.uuid4()}",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, secret),
    }


# --- the settings: one rule, declared once ----------------------------------------------------


def test_the_signed_cap_is_above_the_unsigned_one_and_within_what_aws_delivers():
    assert MAX_BODY == 2 * 1024 * 1024
    assert MAX_BODY < MAX_SIGNED_BODY <= 6 * 1024 * 1024  # Lambda's synchronous payload limit
    required = {"OUTCOME_TABLE": "o", "ORDER_QUEUE_URL": "q", "CONFIG_BUCKET": "c"}
    with pytest.raises(SettingsError) as err:
        IntakeEnvironment.from_environ(required | {"MAX_SIGNED_BODY_BYTES": "4096", "MAX_BODY_BYTES": "8192"})
    assert "MAX_SIGNED_BODY_BYTES" in str(err.value) and "MAX_BODY_BYTES" in str(err.value)


# --- a signed order over MAX_BODY_BYTES -------------------------------------------------------


def test_a_signed_3_mb_shopify_order_becomes_one_provider_order(harness, warnings_log):
    body = big_shopify_order(3_000_000)
    assert MAX_BODY < len(body) < MAX_SIGNED_BODY
    headers = shopify_headers(body)
    r = harness.post(f"/webhooks/{SOURCE}", body, headers)
    assert r.status_code == 202, r.text[:500]
    answer = r.json()
    assert "status" not in answer and answer["duplicate"] is False
    tracking_id = answer["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.external_order_id == str(json.loads(body)["id"])
    [created] = harness.orders_with_reference(tracking_id)
    assert len(created["request"]["products"]) == 300
    # Shopify retries the same delivery: the same tracking id, no second order
    again = harness.post(f"/webhooks/{SOURCE}", body, headers)
    assert again.status_code == 202 and again.json() | {"duplicate": None} == answer | {"duplicate": None}
    assert again.json()["duplicate"] is True
    harness.drain()
    assert len(harness.orders_with_reference(tracking_id)) == 1
    assert MARKER not in warnings_log.getvalue()


def test_a_signed_webhook_over_the_memory_cap_is_recorded_failed_unparsed(harness, warnings_log):
    """Over MAX_SIGNED_BODY_BYTES (reachable locally: the local API, like API Gateway, lets 10 MB
    through): authentic, so recorded as a visible failure and answered 202, never parsed."""
    body = big_shopify_order(MAX_SIGNED_BODY + 500_000)
    assert MAX_SIGNED_BODY < len(body) < 10 * 1024 * 1024
    headers = shopify_headers(body)
    r = harness.post(f"/webhooks/{SOURCE}", body, headers)
    assert r.status_code == 202, r.text[:500]
    answer = r.json()
    assert answer["status"] == "FAILED" and answer["error"]["code"] == "BODY_TOO_LARGE"
    tracking_id = answer["tracking_id"]
    # visible where an operator and the storefront look: the outcome table and the status route
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code == "BODY_TOO_LARGE"
    assert outcome.source == SOURCE and str(len(body)) in (outcome.error_message or "")
    status = harness.get(f"/orders/{tracking_id}").json()
    assert status["status"] == "FAILED"
    assert [d["error_code"] for d in status["destinations"]] == ["BODY_TOO_LARGE"]
    [line] = [x for x in _lines(warnings_log) if x.get("tracking_id") == tracking_id]
    assert line["level"] == "WARNING" and line["source"] == SOURCE and line["error_code"] == "BODY_TOO_LARGE"
    # Shopify's retry of the same delivery is the same record, not a second one
    again = harness.post(f"/webhooks/{SOURCE}", body, headers)
    assert again.status_code == 202 and again.json()["tracking_id"] == tracking_id
    assert len(harness.outcomes(tracking_id)) == 1
    assert harness.orders_with_reference(tracking_id) == []
    assert MARKER not in warnings_log.getvalue()


# --- refusals: 413 only when no signature holds, and always logged ------------------------------


def test_a_forged_oversized_webhook_is_413_and_logged(harness, warnings_log):
    body = big_shopify_order(3_000_000)
    forged = shopify_headers(body, secret="shpss_not_the_secret")
    r = harness.post(f"/webhooks/{SOURCE}", body, forged)
    assert r.status_code == 413 and r.json()["error"]["code"] == "BODY_TOO_LARGE"
    [line] = [x for x in _lines(warnings_log) if x.get("body_bytes") == len(body)]
    assert line["level"] == "WARNING" and line["source"] == SOURCE
    assert line["limit_bytes"] == MAX_BODY and line["error_code"] == "SIGNATURE_INVALID"
    # the same body without any signature: the same answer
    unsigned = {k: v for k, v in forged.items() if k != "X-Shopify-Hmac-Sha256"}
    r = harness.post(f"/webhooks/{SOURCE}", body, unsigned)
    assert r.status_code == 413 and r.json()["error"]["code"] == "BODY_TOO_LARGE"
    # within MAX_BODY_BYTES a forged body is a 401, logged with its size too
    small = big_shopify_order(0, lines=1)
    r = harness.post(f"/webhooks/{SOURCE}", small, shopify_headers(small, secret="shpss_not_the_secret"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_INVALID"
    lines = _lines(warnings_log)
    assert any(x.get("body_bytes") == len(small) and x["source"] == SOURCE for x in lines)
    assert sum(x.get("source") == SOURCE and x["level"] == "WARNING" for x in lines) == 3
    assert MARKER not in warnings_log.getvalue() and "Kaivokatu" not in warnings_log.getvalue()
    assert harness.orders_with_reference(str(json.loads(body)["id"])) == []


def test_a_form_post_over_64_kib_is_413_and_logged(harness, warnings_log):
    body = json.dumps(
        {
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "address": {"address1": "12 Analytical Row", "city": "London", "zip": "N1 9GU", "country": "GB"},
            "items": [{"sku": "TEE-BLUE-M", "quantity": 1}],
            "notes": MARKER * 3000,
        }
    ).encode()
    assert len(body) > intake_service.MAX_FORM_BYTES
    r = harness.post(f"/forms/{FORM_KEY}", body, {"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "BODY_TOO_LARGE"
    [line] = [x for x in _lines(warnings_log) if x.get("form_key") == FORM_KEY]
    assert line["level"] == "WARNING" and line["body_bytes"] == len(body)
    assert line["limit_bytes"] == intake_service.MAX_FORM_BYTES
    assert MARKER not in warnings_log.getvalue() and "Lovelace" not in warnings_log.getvalue()
