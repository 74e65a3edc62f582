"""Buyer PII never reaches a log line: one allow-list masking helper in front of it."""

from __future__ import annotations

import io
import json
import logging
import uuid
from urllib.parse import urlencode

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
    assert kept["lines"] == canonical["lines"]  # SKUs and quantities are kept ...
    assert kept["billing_address"]["country"] == MASK  # ... a country is not on the allow-list
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


# Not named by any deny-list: the city, province, country, coupon and free-text notes a buyer
# typed, a property a shop added, a field nobody has heard of. An allow-list masks them all.
UNLISTED = {
    "city": "Plantedcity",
    "province": "Plantedprovince",
    "country": "PL",
    "coupon": "PLANTEDCOUPON",
    "notes": "call Plantedname on 0171 555 0199",
    "engraving": "For Plantedname",
}


def test_mask_pii_keeps_only_allow_listed_fields_at_any_depth():
    order = {
        "buyer": {"email": PLANTED["email"]},
        "billing_address": {"city": UNLISTED["city"], "province": UNLISTED["province"], "country": "PL"},
        "coupon": UNLISTED["coupon"],
        "notes": UNLISTED["notes"],
        "lines": [{"sku": "TEE-BLUE-M", "quantity": 2, "options": {"Engraving": UNLISTED["engraving"]}}],
        "discount_codes": [{"code": UNLISTED["coupon"]}],
        "deep": {"deeper": {"deepest": UNLISTED["notes"]}},
        "fields": [{"field": "items[0][quantity]", "code": "greater_than", "message": UNLISTED["notes"]}],
    }
    masked = mask_pii(order)
    text = json.dumps(masked)
    assert not [v for v in [*UNLISTED.values(), *PLANTED.values()] if v in text], text
    assert masked["lines"][0]["sku"] == "TEE-BLUE-M" and masked["lines"][0]["quantity"] == 2
    assert (
        masked["fields"][0]["field"] == "items[0][quantity]" and masked["fields"][0]["code"] == "greater_than"
    )


def test_mask_pii_never_raises_on_hostile_structures():
    deep: dict = {}
    node = deep
    for _ in range(50_000):  # far past Python's recursion limit
        node["lines"] = {}
        node = node["lines"]
    cyclic: dict = {"lines": []}
    cyclic["lines"].append(cyclic)
    for hostile in (deep, cyclic, "[" * 100_000 + "]" * 100_000, {"sku": object()}, {1: 2, (3,): 4}):
        json.dumps(mask_pii(hostile), default=str)  # a bounded, loggable value, no exception


def test_a_rejected_urlencoded_form_logged_at_debug_carries_none_of_what_the_buyer_typed(harness):
    """The storefront page's plain post, refused, with the intake's log at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter())
    target = intake_service.logger
    previous = target.log_level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        body = urlencode(
            {
                "submission_id": uuid.uuid4().hex,
                "email": PLANTED["email"],
                "first_name": PLANTED["first_name"],
                "last_name": PLANTED["last_name"],
                "phone": PLANTED["phone"],
                "address[address1]": PLANTED["address1"],
                "address[city]": UNLISTED["city"],
                "address[province]": UNLISTED["province"],
                "address[country]": UNLISTED["country"],
                "coupon": UNLISTED["coupon"],
                "notes": UNLISTED["notes"],
                "items[0][sku]": "TEE-BLUE-M",
                "items[0][quantity]": "0",  # invalid
            }
        )
        r = harness.post(
            "/forms/fk_demo0001/submit", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 422 and "<form" in r.text
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)
    logged = stream.getvalue()
    assert "order failed validation" in logged and "TEE-BLUE-M" in logged
    assert not [v for v in [*UNLISTED.values(), *PLANTED.values()] if v in logged], logged
