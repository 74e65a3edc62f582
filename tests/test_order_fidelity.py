"""Order fidelity at the way in: real Shopify orders map to the canonical order with their money
exact, signed orders are never turned away for their content, test and cancelled orders are
recorded and not sent, inputs are strict, and large orders go through the queue by way of S3."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from orderbridge.intake.mapping import from_shopify
from orderbridge.intake.signatures import sign_shopify
from orderbridge.models import money
from orderbridge.models.event import OrderEvent
from orderbridge.models.order import CanonicalOrder
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.payloads import EventCodec, PayloadError
from tests.factories import shared_case

SHOPIFY_SECRET = "shpss_local_demo_secret"
HOOK = "/webhooks/shopify-demo"


def case(name: str) -> dict[str, Any]:
    return json.loads(shared_case("shopify", name).read_text())


def signed(body: bytes, topic: str | None = "orders/create") -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
        "X-Shopify-Webhook-Id": uuid.uuid4().hex,
    }
    if topic is not None:
        headers["X-Shopify-Topic"] = topic
    return headers


# --- money and lines, exactly as Shopify charged them ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "currency", "total", "test", "email"),
    [
        ("order-usd-tax.json", "USD", "409.94", False, "buyer@example.com"),
        ("order-hk-null-zip.json", "USD", "409.94", False, "buyer@example.com"),
        ("order-phone-only-buyer.json", "USD", "409.94", False, None),
        ("test-notification-discount.json", "USD", "403.00", True, "buyer@example.com"),
    ],
)
def test_shared_shopify_cases_map_with_their_money_exact(name, currency, total, test, email):
    payload = case(name)
    order = CanonicalOrder.model_validate(from_shopify(payload))
    assert order.currency == currency and order.total == Decimal(total) and order.test is test
    assert order.computed_total() == Decimal(payload["total_price"])  # lines, discounts, shipping, tax add up
    assert order.subtotal() == Decimal(payload["subtotal_price"])
    assert order.tax() == Decimal(payload["total_tax"])
    assert order.buyer.email == email
    assert all(isinstance(line.unit_price, Decimal) for line in order.lines)


def test_lines_keep_the_variant_and_properties_and_never_say_none():
    payload = case("order-usd-tax.json")
    payload["line_items"][0]["properties"].append({"name": "Gift note", "value": None})
    payload["line_items"][0]["properties"].append({"name": "Blank", "value": ""})
    order = CanonicalOrder.model_validate(from_shopify(payload))
    first = order.lines[0]
    assert first.name == "IPod Nano - 8gb - green" and first.variant_title == "green"
    assert first.options == {"Custom Engraving": "Happy Birthday"}  # null and blank left out


def test_discount_allocations_and_shipping_reach_the_canonical_order():
    order = CanonicalOrder.model_validate(from_shopify(case("test-notification-discount.json")))
    assert [line.discount for line in order.lines] == [Decimal(0), Decimal("5.00")]
    assert order.shipping_total == Decimal("10.00") and order.order_discount == 0
    assert order.computed_total() == Decimal("403.00")


@pytest.mark.parametrize(
    ("currency", "price", "ok"),
    [("JPY", "59400", True), ("JPY", "59400.5", False), ("KWD", "1.250", True), ("KWD", "1.2505", False)],
)
def test_amounts_follow_the_currencys_minor_units(currency, price, ok):
    data = {"currency": currency, "buyer": {}, "lines": [{"sku": "A", "quantity": 1, "unit_price": price}]}
    if ok:
        assert CanonicalOrder.model_validate(data).computed_total() == Decimal(price)
    else:
        with pytest.raises(ValidationError, match="more decimals"):
            CanonicalOrder.model_validate(data)
    assert money.minor_units("JPY") == 0 and money.minor_units("KWD") == 3 and money.minor_units("XOF") == 0


def test_no_money_limit_that_ignores_the_currency():
    """An IDR unit price above 1,000,000 is an ordinary price."""
    data = {
        "currency": "IDR",
        "buyer": {},
        "lines": [{"sku": "A", "quantity": 2, "unit_price": "1250000.00"}],
    }
    assert CanonicalOrder.model_validate(data | {"total": "2500000.00"}).total == Decimal("2500000.00")


def test_a_stated_total_that_does_not_add_up_is_refused():
    data = {"buyer": {}, "lines": [{"sku": "A", "quantity": 1, "unit_price": "10.00"}], "total": "12.00"}
    with pytest.raises(ValidationError, match=r"not what the lines"):
        CanonicalOrder.model_validate(data)


@pytest.mark.parametrize("quantity", ["1_0", True, 1.5, "-1", " 2 3", "0x10"])
def test_quantities_are_whole_numbers_only(quantity):
    with pytest.raises(ValidationError):
        CanonicalOrder.model_validate({"buyer": {}, "lines": [{"sku": "A", "quantity": quantity}]})


@pytest.mark.parametrize("field", ["name", "sku"])
def test_control_characters_are_refused_in_canonical_text(field):
    line = {"sku": "A", "quantity": 1, field: "Bad\x00name"}
    with pytest.raises(ValidationError, match="control characters"):
        CanonicalOrder.model_validate({"buyer": {}, "lines": [line]})


def test_the_shopify_mapper_removes_control_characters_a_sender_cannot_fix():
    payload = case("order-usd-tax.json")
    payload["line_items"][1]["name"] = "IPod\x00 Nano\x1b red"
    payload["id"] = "4501\x07"
    order = CanonicalOrder.model_validate(from_shopify(payload))
    assert order.lines[1].name == "IPod Nano red" and order.external_order_id == "4501"


# --- the event codec: large events by way of S3 --------------------------------------------------------


def test_small_events_travel_whole_and_large_ones_by_pointer(harness):
    from orderbridge import clients

    codec = EventCodec(
        s3_client=clients.client("s3"), bucket=harness.system.resources.buckets["EventPayloadBucket"]
    )
    order = CanonicalOrder.model_validate({"buyer": {}, "lines": [{"sku": "A", "quantity": 1}]})
    small = OrderEvent(source="erp", route="default", order=order)
    assert codec.decode(codec.encode(small)) == small and "order_event_pointer" not in codec.encode(small)
    big_order = CanonicalOrder.model_validate(
        {
            "buyer": {},
            "lines": [{"sku": f"S{i}", "quantity": 1, "options": {"n": "x" * 1000}} for i in range(250)],
        }
    )
    big = OrderEvent(source="erp", route="default", order=big_order)
    body = codec.encode(big)
    assert len(body) < 1024 and "order_event_pointer" in body
    assert codec.decode(body) == big
    with pytest.raises(PayloadError):
        EventCodec().encode(big)  # no bucket: refused here, not by SQS


# --- the intake: signed orders are never turned away ---------------------------------------------------


def test_a_signed_order_the_pipeline_cannot_take_is_recorded_not_refused(harness):
    payload = case("order-usd-tax.json") | {"id": int(uuid.uuid4().int % 10**12)}
    payload["line_items"][0]["quantity"] = -3  # nothing a mapping fix can turn into an order
    body = json.dumps(payload).encode()
    r = harness.post(HOOK, body, signed(body))
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["status"] == "FAILED" and answer["error"]["code"] == "VALIDATION_FAILED"
    assert any(f["field"] == "lines.0.quantity" for f in answer["error"]["fields"])
    [recorded] = harness.outcomes(answer["tracking_id"])
    assert recorded.status is OutcomeStatus.FAILED_PERMANENT and "lines.0.quantity" in recorded.error_message
    assert recorded.external_order_id == str(payload["id"])
    assert harness.get(f"/orders/{answer['tracking_id']}").json()["status"] == "FAILED"


@pytest.mark.parametrize(
    ("name", "code"),
    [("test-notification-discount.json", "TEST_ORDER")],
)
def test_shopifys_test_notification_is_recorded_and_not_sent(harness, name, code):
    payload = case(name) | {"id": int(uuid.uuid4().int % 10**12)}
    body = json.dumps(payload).encode()
    r = harness.post(HOOK, body, signed(body))
    assert r.status_code == 202 and r.json()["status"] == "SKIPPED" and r.json()["error"]["code"] == code
    [recorded] = harness.outcomes(r.json()["tracking_id"])
    assert recorded.status is OutcomeStatus.SKIPPED
    assert harness.orders_with_reference(r.json()["tracking_id"]) == []


def test_a_cancelled_live_order_is_recorded_cancelled_and_not_sent(harness):
    payload = case("order-usd-tax.json") | {
        "id": int(uuid.uuid4().int % 10**12),
        "cancelled_at": "2026-11-30T10:00:00+00:00",
        "cancel_reason": "customer",
    }
    body = json.dumps(payload).encode()
    r = harness.post(HOOK, body, signed(body))
    assert r.json()["status"] == "SKIPPED" and r.json()["error"]["code"] == "CANCELLED"
    harness.drain()
    assert harness.orders_with_reference(r.json()["tracking_id"]) == []


def test_a_test_order_is_skipped_by_default(harness):
    payload = case("order-usd-tax.json") | {"id": int(uuid.uuid4().int % 10**12), "test": True}
    body = json.dumps(payload).encode()
    r = harness.post(HOOK, body, signed(body))
    assert r.json()["status"] == "SKIPPED" and r.json()["error"]["code"] == "TEST_ORDER"
    harness.drain()
    assert harness.orders_with_reference(r.json()["tracking_id"]) == []


@pytest.mark.parametrize("topic", [None, "draft_orders/create", "orders/updated"])
def test_only_the_topics_that_mean_a_new_order_become_orders(harness, topic):
    payload = case("order-usd-tax.json") | {"id": int(uuid.uuid4().int % 10**12)}
    body = json.dumps(payload).encode()
    r = harness.post(HOOK, body, signed(body, topic=topic))
    assert r.status_code == 200 and r.json() == {"ignored": True}


def test_a_body_far_over_64_kib_is_taken(harness):
    payload = case("order-usd-tax.json") | {"id": int(uuid.uuid4().int % 10**12)}
    line = payload["line_items"][1]
    payload["line_items"] = [line] * 250
    payload["subtotal_price"] = f"{199 * 250:.2f}"
    payload["total_price"] = f"{199 * 250 + 11.94:.2f}"
    payload["note"] = "n" * 3000
    body = json.dumps(payload).encode()
    assert len(body) > 64 * 1024
    r = harness.post(HOOK, body, signed(body))
    assert r.status_code == 202, r.text
    assert "status" not in r.json()  # accepted and queued, not recorded as a failure


def test_a_250_line_shopify_order_is_delivered_by_way_of_s3(harness):
    """Real orders can be large: 250 lines (over SQS's 256 KiB as an event) reach the provider whole."""
    from orderbridge import clients

    payload = case("order-usd-tax.json") | {"id": int(uuid.uuid4().int % 10**12)}
    line = payload["line_items"][1] | {"sku": "MUG-001", "properties": [{"name": "Note", "value": "n" * 900}]}
    payload["line_items"] = [line] * 250
    payload["subtotal_price"] = f"{199 * 250:.2f}"
    payload["total_price"] = f"{199 * 250 + 11.94:.2f}"
    body = json.dumps(payload).encode()
    r = harness.post(HOOK, body, signed(body))
    assert r.status_code == 202 and "status" not in r.json(), r.text
    tracking_id = r.json()["tracking_id"]
    bucket = harness.system.resources.buckets["EventPayloadBucket"]
    stored = clients.client("s3").list_objects_v2(Bucket=bucket, Prefix="events/").get("Contents", [])
    assert stored, "the event went by way of S3"
    harness.drain(until=harness.final(tracking_id), timeout=60)
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome
    [created] = harness.orders_with_reference(tracking_id)
    assert len(created["request"]["products"]) == 250
    assert Decimal(str(created["order"]["total_inc_tax"])) == Decimal(payload["total_price"])
