"""The pipeline end to end: HTTP into the local API, moto's SQS and DynamoDB, the real dispatcher,
the BigCommerce sandbox over HTTP. Provider orders and outcomes are counted at the end."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks.webhooks import Webhook

from orderbridge.intake.signatures import sign_shopify
from orderbridge.models.outcome import OutcomeStatus
from tests.factories import queue_event

FORM = "/forms/fk_demo0001"
ORIGIN = "http://localhost:8000"
SHOPIFY_SECRET = "shpss_local_demo_secret"
PARTNER_SECRET = "whsec_bG9jYWwtZGVtby1zaWduaW5nLXNlY3JldA=="


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def form_body(**changes: Any) -> dict[str, Any]:
    body = {
        "submission_id": _uid(),
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address": {"address1": "12 Analytical Row", "city": "London", "zip": "N1 9GU", "country": "GB"},
        "items": [{"sku": "TEE-BLUE-M", "quantity": 2}],
    }
    body.update(changes)
    return body


def shopify_payload(order_id: int) -> bytes:
    return json.dumps(
        {
            "id": order_id,
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
            "line_items": [{"sku": "TEE-BLUE-L", "title": "Tee", "quantity": 1, "price": "25.00"}],
        }
    ).encode()


def standard_headers(
    body: bytes, *, secret: str = PARTNER_SECRET, at: datetime | None = None
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    msg_id = f"msg_{_uid()}"
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def canonical_event(ext: str) -> bytes:
    return json.dumps(
        {
            "type": "order.created",
            "data": {
                "external_order_id": ext,
                "buyer": {"email": "m@example.com"},
                "billing_address": {
                    "first_name": "M",
                    "last_name": "H",
                    "address1": "1 Apollo Way",
                    "city": "Cambridge",
                    "zip": "02139",
                    "country": "US",
                },
                "lines": [{"sku": "MUG-001", "quantity": 3}],
            },
        }
    ).encode()


# --- ways in ----------------------------------------------------------------------------------


def test_json_form_post_becomes_one_provider_order(harness):
    r = harness.post(FORM, json.dumps(form_body()), {"Content-Type": "application/json", "Origin": ORIGIN})
    assert r.status_code == 202, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    tracking_id = r.json()["tracking_id"]
    assert [o.status for o in harness.outcomes(tracking_id)] == [OutcomeStatus.RECEIVED]
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 1 and outcome.http_status == 200
    [created] = harness.orders_with_reference(tracking_id)
    assert str(created["order"]["id"]) == outcome.provider_order_id
    sent = created["request"]
    assert sent["billing_address"]["email"] == "ada@example.com"
    # the price is the form catalog's (the server's), sent so BigCommerce charges what the page showed
    price = {"price_inc_tax": 15, "price_ex_tax": 15}
    assert sent["products"] == [{"product_id": 111, "variant_id": 77, "quantity": 2, **price}]
    status = harness.get(f"/orders/{tracking_id}").json()
    assert status["status"] == "SUCCEEDED"
    assert status["destinations"][0]["provider_order_id"] == outcome.provider_order_id


def test_urlencoded_form_post_becomes_a_provider_order(harness):
    body = (
        f"submission_id={_uid()}&email=grace%40example.com&first_name=Grace&last_name=Hopper"
        "&address%5Baddress1%5D=1+Navy+Yard&address%5Bcity%5D=Arlington&address%5Bzip%5D=22202"
        "&address%5Bcountry%5D=US&items%5B0%5D%5Bsku%5D=TEE-BLUE-L&items%5B0%5D%5Bquantity%5D=3"
    )
    r = harness.post(FORM, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    [created] = harness.orders_with_reference(tracking_id)
    price = {"price_inc_tax": 15, "price_ex_tax": 15}
    assert created["request"]["products"] == [{"product_id": 111, "variant_id": 78, "quantity": 3, **price}]


def test_double_submitted_form_is_one_order(harness):
    body = json.dumps(form_body())
    first = harness.post(FORM, body, {"Content-Type": "application/json"})
    second = harness.post(FORM, body, {"Content-Type": "application/json"})
    assert first.status_code == second.status_code == 202
    assert first.json()["tracking_id"] == second.json()["tracking_id"]
    assert second.json()["duplicate"] is True
    harness.drain(until=harness.final(first.json()["tracking_id"]))
    assert len(harness.orders_with_reference(first.json()["tracking_id"])) == 1


def test_signed_shopify_webhook_becomes_a_provider_order(harness):
    body = shopify_payload(int(time.time() * 1000))
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
    }
    r = harness.post("/webhooks/shopify-demo", body, headers)
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.source == "shopify-demo" and outcome.external_order_id == json.loads(body)["id"].__str__()
    # Shopify retries the same delivery: acknowledged with the same tracking id, no second order
    again = harness.post("/webhooks/shopify-demo", body, headers)
    assert again.status_code == 202 and again.json()["tracking_id"] == tracking_id
    harness.drain()
    assert len(harness.orders_with_reference(tracking_id)) == 1


def test_signed_standard_webhook_becomes_a_provider_order(harness):
    body = canonical_event(f"P-{_uid()}")
    r = harness.post("/webhooks/partner-demo", body, standard_headers(body))
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    assert harness.outcomes(tracking_id)[0].status is OutcomeStatus.SUCCEEDED


def test_tampered_and_expired_signatures_are_rejected(harness):
    body = shopify_payload(1)
    tampered = body.replace(b"Helsinki", b"Helsinkl")
    r = harness.post(
        "/webhooks/shopify-demo",
        tampered,
        {"Content-Type": "application/json", "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET)},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_INVALID"

    body = canonical_event("P-expired")
    old = standard_headers(body, at=datetime.now(UTC) - timedelta(minutes=10))
    r = harness.post("/webhooks/partner-demo", body, old)
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_EXPIRED"

    wrong_key = standard_headers(body, secret="whsec_" + "d3Jvbmcta2V5LXdyb25nLWtleQ==")
    r = harness.post("/webhooks/partner-demo", body, wrong_key)
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_INVALID"

    r = harness.post("/webhooks/partner-demo", body, {"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_MISSING"


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_a_4xx_with_a_stable_code(harness):
    cases = [
        (FORM, b"{not json", {"Content-Type": "application/json"}, 400, "MALFORMED_BODY"),
        (FORM, b"\xff\xfe", {"Content-Type": "application/json"}, 400, "MALFORMED_BODY"),
        (FORM, b"[]", {"Content-Type": "application/json"}, 400, "MALFORMED_BODY"),
        (FORM, b"[" * 20000 + b"]" * 20000, {"Content-Type": "application/json"}, 400, "JSON_TOO_DEEP"),
        (FORM, b'{"a":' * 13 + b"1" + b"}" * 13, {"Content-Type": "application/json"}, 400, "JSON_TOO_DEEP"),
        (FORM, b"<order/>", {"Content-Type": "text/xml"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (FORM, b"x" * 70000, {"Content-Type": "application/json"}, 413, "BODY_TOO_LARGE"),
        ("/forms/fk_nosuchform", b"{}", {"Content-Type": "application/json"}, 404, "FORM_NOT_FOUND"),
        (
            FORM,
            b"{}",
            {"Content-Type": "application/json", "Origin": "https://evil.example"},
            403,
            "ORIGIN_NOT_ALLOWED",
        ),
        ("/webhooks/nobody", b"{}", {"Content-Type": "application/json"}, 404, "SOURCE_NOT_FOUND"),
    ]
    for path, body, headers, status, code in cases:
        r = harness.post(path, body, headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, body[:20], r.text)
        assert set(r.json()["error"]) == {"code", "message", "fields"}


def test_invalid_form_fields_are_named_in_form_terms(harness):
    body = form_body(email="not-an-email", items=[{"sku": "TEE-BLUE-M", "quantity": 0}])
    body["address"] = {"address1": "x", "city": "y", "zip": "1" * 21, "country": "Narnia"}
    r = harness.post(FORM, json.dumps(body), {"Content-Type": "application/json"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    fields = {f["field"] for f in error["fields"]}
    assert {"email", "items.0.quantity", "address.zip", "address.country"} <= fields  # as JSON names them


def test_honeypot_field_rejects_bots(harness):
    r = harness.post(
        FORM, json.dumps(form_body(website="http://spam.example")), {"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "SUBMISSION_REJECTED"


def test_cors_preflight_answers_only_allowed_origins(harness):
    import requests

    ok = requests.options(harness.api + FORM, headers={"Origin": ORIGIN}, timeout=10)
    assert ok.status_code == 204 and ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    bad = requests.options(harness.api + FORM, headers={"Origin": "https://evil.example"}, timeout=10)
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad.headers


def test_field_errors_carry_cors_headers_for_an_allowed_origin_only(harness):
    """A shop's own page posts cross-origin; without CORS on the 422 it could not show the errors."""
    bad = json.dumps({"email": "nope", "items": []})
    headers = {"Content-Type": "application/json"}
    r = harness.post(FORM, bad, headers | {"Origin": ORIGIN})
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = harness.post(FORM, bad, headers | {"Origin": "https://evil.example"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers


def test_status_endpoint_answers_only_the_tracking_id_asked(harness):
    r = harness.get("/orders/ob_" + "0" * 32)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = harness.get("/orders/anything")
    assert r.status_code == 404


# --- the dispatcher -----------------------------------------------------------------------------


def test_same_message_delivered_twice_gives_one_provider_order(harness):
    body, tracking_id = queue_event()
    harness.send(body)
    harness.send(body)
    harness.drain()
    assert len(harness.orders_with_reference(tracking_id)) == 1
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_provider_500_then_200_gives_one_order_after_a_retry(harness):
    harness.fault("bigcommerce", "error_500", count=1)
    body, tracking_id = queue_event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 2
    assert [h.status for h in outcome.history][-3:] == [
        OutcomeStatus.FAILED_RETRYABLE,
        OutcomeStatus.IN_FLIGHT,
        OutcomeStatus.SUCCEEDED,
    ]
    assert len(harness.orders_with_reference(tracking_id)) == 1


def test_provider_rejection_is_failed_permanent_with_its_message(harness):
    body, tracking_id = queue_event(lines=[{"sku": "RETIRED-001", "quantity": 1}])
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.FAILED_PERMANENT
    assert outcome.http_status == 400 and outcome.error_code == "BIGCOMMERCE_400"
    assert "999" in outcome.error_message
    assert outcome.attempts == 1


def test_record_that_keeps_failing_reaches_the_dead_letter_queue(harness):
    harness.fault("bigcommerce", "error_500", count=50)
    body, tracking_id = queue_event()
    harness.send(body)
    harness.drain(timeout=40)
    harness.clear_faults()
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.DEAD_LETTERED and outcome.attempts == 3
    assert body in [m["Body"] for m in harness.take_dead_letters()]
    assert harness.orders_with_reference(tracking_id) == []


def test_permanent_failure_is_parked_and_can_be_retried_after_a_fix(harness):
    body, tracking_id = queue_event(lines=[{"sku": "NEW-SKU-1", "quantity": 1}])
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code == "UNKNOWN_SKU"
    parked = [m for m in harness.take_dead_letters() if m["Body"] == body]
    assert len(parked) == 1
    attrs = parked[0]["MessageAttributes"]
    assert attrs["tracking_id"]["StringValue"] == tracking_id
    assert attrs["reason"]["StringValue"] == "FAILED_PERMANENT"
    # the operator adds the SKU to the route's catalog, reopens the delivery and redrives it
    config = harness.system.local_config()
    config["routes"]["default"]["destinations"][0]["catalog"]["NEW-SKU-1"] = {"product_id": 112}
    harness.system.upload_config(config)
    try:
        from orderbridge import wiring

        assert wiring.outcome_store().reopen(tracking_id=tracking_id, note="catalog fixed") == ["bc-demo"]
        harness.send(body)
        harness.drain(until=harness.final(tracking_id))
        [outcome] = harness.outcomes(tracking_id)
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 2
        assert len(harness.orders_with_reference(tracking_id)) == 1
    finally:
        harness.system.upload_config()


def test_connection_dropped_after_create_is_reconciled_not_resent(harness):
    harness.fault("bigcommerce", "drop_after_create", count=1)
    body, tracking_id = queue_event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 2
    [created] = harness.orders_with_reference(tracking_id)
    assert str(created["order"]["id"]) == outcome.provider_order_id


def test_malformed_and_unroutable_messages_are_recorded_not_retried(harness):
    from orderbridge import wiring

    harness.send("{this is not json")
    body, tracking_id = queue_event()
    event = json.loads(body)
    event["route"] = "no-such-route"
    harness.send(json.dumps(event))
    harness.drain()
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code == "UNKNOWN_ROUTE"
    rejected = wiring.outcome_store().list_by_status(OutcomeStatus.FAILED_PERMANENT)
    assert any(o.error_code == "MALFORMED_EVENT" for o in rejected)


def test_rotated_provider_credential_is_reread_once_on_401(harness):
    from orderbridge import clients

    sm = clients.client("secretsmanager")
    secret_id = "orderbridge/providers/bigcommerce-demo"
    # warm the cache with the current token, then rotate on both sides
    body, tracking_id = queue_event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    import requests

    requests.post(
        f"{harness.sandbox}/_sandbox/bigcommerce/config",
        json={"accounts": {"demo123": {"token": "rotated-token"}}},
        timeout=10,
    ).raise_for_status()
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps({"access_token": "rotated-token"}))
    try:
        body, tracking_id = queue_event()
        harness.send(body)
        harness.drain(until=harness.final(tracking_id))
        [outcome] = harness.outcomes(tracking_id)
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 1
    finally:
        requests.post(
            f"{harness.sandbox}/_sandbox/bigcommerce/config",
            json={"accounts": {"demo123": {"token": "local-bigcommerce-token"}}},
            timeout=10,
        ).raise_for_status()
        sm.put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"access_token": "local-bigcommerce-token"})
        )
