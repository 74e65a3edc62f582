"""Replays and secret rotation, end to end through the local system.

A replayed delivery inside the tolerance window is acknowledged (2xx, `duplicate`, the first
tracking id) and gives one provider order; outside the window it is refused with its stable
code. A signing secret rotated mid-stream (old -> old+new -> new) rejects no genuine delivery,
and once retired the old secret is refused.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from orderbridge import clients, constants, wiring
from orderbridge.exceptions import IntakeRejectedError
from orderbridge.intake.signatures import sign_shopify, sign_stripe

SHOPIFY_SECRET = "shpss_local_demo_secret"
PARTNER_SECRET = "whsec_bG9jYWwtZGVtby1zaWduaW5nLXNlY3JldA=="
STRIPE_SECRET = "whsec_local_stripe_style_demo_secret"
JSON = {"Content-Type": "application/json"}


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def canonical(ext: str | None, **top: Any) -> bytes:
    order: dict[str, Any] = {
        "buyer": {"email": "grace@example.com"},
        "billing_address": {
            "first_name": "Grace",
            "last_name": "Hopper",
            "address1": "1 Harvard Yard",
            "city": "Cambridge",
            "zip": "02138",
            "country": "US",
        },
        "lines": [{"sku": "MUG-001", "quantity": 1}],
    }
    if ext:
        order["external_order_id"] = ext
    return json.dumps({**top, "type": "order.created", "data": order}).encode()


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET, at: int | None = None) -> dict[str, str]:
    return {**JSON, "Stripe-Signature": sign_stripe(body, secret, timestamp=at)}


def assert_replayed_once(harness: Any, first: Any, again: Any) -> str:
    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    tracking_id = first.json()["tracking_id"]
    assert first.json()["duplicate"] is False
    assert again.json() | {"duplicate": None} == first.json() | {"duplicate": None}
    assert again.json()["duplicate"] is True
    harness.drain(until=harness.final(tracking_id))
    harness.drain()
    assert len(harness.orders_with_reference(tracking_id)) == 1
    return tracking_id


# --- replays inside the window ------------------------------------------------------------------


def test_standard_webhook_replayed_with_the_same_webhook_id(harness):
    body = canonical(f"SW-{_uid()}")
    at, msg_id = datetime.now(UTC), f"msg_{_uid()}"
    headers = {
        **JSON,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(PARTNER_SECRET).sign(msg_id, at, body.decode()),
    }
    first = harness.post("/webhooks/partner-demo", body, headers)
    again = harness.post("/webhooks/partner-demo", body, headers)
    assert_replayed_once(harness, first, again)


def test_shopify_webhook_replayed_with_the_same_event_id(harness):
    body = json.dumps(
        {
            "id": int(time.time() * 1000),
            "email": "hedy@example.com",
            "currency": "EUR",
            "billing_address": {
                "first_name": "Hedy",
                "last_name": "L",
                "address1": "Ring 1",
                "city": "Vienna",
                "zip": "1010",
                "country_code": "AT",
            },
            "line_items": [{"sku": "TEE-BLUE-L", "title": "Tee", "quantity": 1, "price": "25.00"}],
        }
    ).encode()
    headers = {
        **JSON,
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Event-Id": f"ev-{_uid()}",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
    }
    first = harness.post("/webhooks/shopify-demo", body, headers)
    again = harness.post("/webhooks/shopify-demo", body, headers)
    assert_replayed_once(harness, first, again)


def test_stripe_event_replayed_byte_for_byte(harness):
    body = canonical(f"ST-{_uid()}", id=f"evt_{_uid()}")
    headers = stripe_headers(body)
    first = harness.post("/webhooks/stripe-demo", body, headers)
    again = harness.post("/webhooks/stripe-demo", body, headers)
    assert_replayed_once(harness, first, again)


def test_stripe_retry_re_signed_later_is_deduplicated_by_its_event_id(harness):
    """No order id in the payload: the event id in the signed body is what identifies it."""
    body = canonical(None, id=f"evt_{_uid()}")
    first = harness.post("/webhooks/stripe-demo", body, stripe_headers(body, at=int(time.time()) - 60))
    again = harness.post("/webhooks/stripe-demo", body, stripe_headers(body))
    assert_replayed_once(harness, first, again)


# --- outside the window -------------------------------------------------------------------------


def test_stripe_delivery_outside_the_tolerance_window_is_refused(harness):
    body = canonical(f"ST-{_uid()}", id=f"evt_{_uid()}")
    for at in (int(time.time()) - 3600, int(time.time()) + 3600):
        r = harness.post("/webhooks/stripe-demo", body, stripe_headers(body, at=at))
        assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_EXPIRED", r.text
    r = harness.post("/webhooks/stripe-demo", body, JSON)
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_MISSING"


def test_stripe_delivery_with_a_forged_signature_is_refused_and_sends_nothing(harness):
    body = canonical(f"ST-{_uid()}", id=f"evt_{_uid()}")
    r = harness.post("/webhooks/stripe-demo", body, stripe_headers(body, secret="whsec_not_ours"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_INVALID"


# --- rotation mid-stream ------------------------------------------------------------------------


@pytest.fixture
def rotating_source(harness):
    """A Stripe-style source with its own secret, so rotating it touches no other test."""
    name = f"rot-{_uid()}"
    secret_id = f"orderbridge/webhooks/{name}"
    sm = clients.client("secretsmanager")
    sm.create_secret(Name=secret_id, SecretString=json.dumps({"secrets": ["whsec_old_" + name]}))
    document = harness.system.local_config()
    document["webhooks"][name] = {
        "scheme": "stripe",
        "payload": "canonical",
        "route": "default",
        "secret_id": secret_id,
    }
    harness.system.upload_config(document)
    probe = canonical(None, id="evt_probe")
    deadline = time.monotonic() + 15
    while harness.post(f"/webhooks/{name}", probe, JSON).status_code == 404:  # config cache: 1 s locally
        assert time.monotonic() < deadline, "the new source never became visible"
        time.sleep(0.2)
    yield name, secret_id
    harness.system.upload_config()
    sm.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)


def test_secret_rotated_mid_stream_rejects_no_genuine_delivery(harness, rotating_source, monkeypatch):
    name, secret_id = rotating_source
    old, new = f"whsec_old_{name}", f"whsec_new_{name}"
    sm = clients.client("secretsmanager")

    def rotate(*secrets: str) -> None:
        sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps({"secrets": list(secrets)}))

    # A second, warm instance whose secret cache lives 1 s: shows the retirement taking effect.
    monkeypatch.setenv(constants.SECRET_MAX_AGE_ENV, "1")
    short_cache = wiring.intake_service()

    sent: list[str] = []
    answers: list[Any] = []

    def deliver(secret: str) -> None:
        body = canonical(f"ROT-{_uid()}", id=f"evt_{_uid()}")
        sent.append(json.loads(body)["data"]["external_order_id"])
        answers.append(harness.post(f"/webhooks/{name}", body, stripe_headers(body, secret)))

    def direct(service: Any, secret: str) -> str:
        body = canonical(f"ROT-{_uid()}", id=f"evt_{_uid()}")
        accepted = service.receive_webhook(source=name, headers=stripe_headers(body, secret), body=body)
        return accepted.tracking_id

    # the sender signs with the old secret; the operator adds the new one; the sender switches
    # at once (before any cache expired); the operator retires the old one
    for _ in range(3):
        deliver(old)
    rotate(old, new)
    for _ in range(2):
        deliver(old)
    warmed = direct(short_cache, old)  # caches [old, new]
    for _ in range(3):
        deliver(new)
    rotate(new)
    for _ in range(2):
        deliver(new)

    rejected = [(a.status_code, a.text) for a in answers if a.status_code != 202]
    assert rejected == []
    tracking_ids = [a.json()["tracking_id"] for a in answers] + [warmed]
    assert len(set(tracking_ids)) == len(sent) + 1 == 11
    harness.drain(until=lambda: all(harness.final(t)() for t in tracking_ids))
    assert all(len(harness.orders_with_reference(t)) == 1 for t in tracking_ids)

    # afterwards the retired secret is refused: by a fresh instance at once ...
    body = canonical(f"ROT-{_uid()}", id=f"evt_{_uid()}")
    with pytest.raises(IntakeRejectedError) as err:
        wiring.intake_service().receive_webhook(source=name, headers=stripe_headers(body, old), body=body)
    assert (err.value.status, err.value.code) == (401, "SIGNATURE_INVALID")
    # ... and by a warm instance once its cache age (1 s here, SECRET_MAX_AGE_SECONDS) has passed
    time.sleep(1.2)
    with pytest.raises(IntakeRejectedError) as err:
        direct(short_cache, old)
    assert (err.value.status, err.value.code) == (401, "SIGNATURE_INVALID")
    assert direct(short_cache, new)  # and the current secret still works there
