"""Buyer PII never reaches a log line: one masking helper (Powertools data masking) in front of it."""

from __future__ import annotations

import io
import json
import logging
import uuid

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from orderbridge.intake import service as intake_service
from orderbridge.observability import MASK, mask_pii

PLANTED = {
    "email": "planted.buyer@example.org",
    "first_name": "Plantedfirst",
    "last_name": "Plantedlast",
    "phone": "+44 20 7946 0958",
    "address1": "221B Planted Street",
    "address2": "Flat Planted",
    "ip": "203.0.113.77",
}


def test_mask_pii_erases_every_pii_field_in_canonical_form_and_shopify_shapes():
    canonical = {
        "buyer": {"email": PLANTED["email"], "phone": PLANTED["phone"], "first_name": PLANTED["first_name"]},
        "billing_address": {
            "first_name": PLANTED["first_name"],
            "last_name": PLANTED["last_name"],
            "address1": PLANTED["address1"],
            "address2": PLANTED["address2"],
            "city": "London",
            "country": "GB",
        },
        "client": {"ip": PLANTED["ip"]},
        "lines": [{"sku": "TEE-BLUE-M", "quantity": 2}],
    }
    shopify = {
        "id": 1,
        "email": PLANTED["email"],
        "browser_ip": PLANTED["ip"],
        "customer": canonical["buyer"],
    }
    for shape in (canonical, shopify, [canonical], json.dumps(canonical)):
        masked = json.dumps(mask_pii(shape))
        assert not [v for v in PLANTED.values() if v in masked], masked
        assert MASK in masked
    kept = mask_pii(canonical)
    assert kept["lines"] == canonical["lines"] and kept["billing_address"]["country"] == "GB"
    assert canonical["buyer"]["email"] == PLANTED["email"]  # the caller's structure is not modified


def test_mask_pii_of_unparseable_text_logs_nothing_of_it():
    assert mask_pii("email=" + PLANTED["email"]) == MASK


def test_a_failed_validation_logged_at_debug_carries_no_planted_pii(harness):
    """A form post that fails validation, through the local API, with the intake's log at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter())
    target = intake_service.logger
    previous = target.log_level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        body = {
            "submission_id": uuid.uuid4().hex,
            "email": PLANTED["email"],
            "first_name": PLANTED["first_name"],
            "last_name": PLANTED["last_name"],
            "phone": PLANTED["phone"],
            "address": {"address1": PLANTED["address1"], "address2": PLANTED["address2"], "country": "GB"},
            "items": [{"sku": "TEE-BLUE-M", "quantity": 0}],  # invalid: quantity and missing city/zip
        }
        r = harness.post("/forms/fk_demo0001", json.dumps(body), {"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)
    logged = stream.getvalue()
    assert "order failed validation" in logged  # the structure was logged ...
    assert MASK in logged  # ... masked
    assert "TEE-BLUE-M" in logged  # what helps debugging stays
    assert not [v for v in PLANTED.values() if v in logged], logged
