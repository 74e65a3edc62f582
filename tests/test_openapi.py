"""The intake's OpenAPI document: generated from the routes, served, saved, valid, complete."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from openapi_spec_validator import validate

from orderbridge.intake import openapi

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "openapi" / "intake.openapi.json"
STALE = (
    "openapi/intake.openapi.json differs from what the intake serves: a route or a model changed. "
    "Run `make openapi` and commit the file (new routes also need an entry in "
    "orderbridge/intake/openapi.py OPERATIONS)."
)


def _served(harness):
    r = harness.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_served_document_is_the_saved_one(harness):
    assert _served(harness) == json.loads(SAVED.read_text()), STALE


def test_document_is_valid_openapi_3_1():
    doc = json.loads(SAVED.read_text())
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_every_route_has_its_answers_described(harness):
    assert openapi.undescribed_operations(_served(harness)) == [], STALE


def test_every_refusal_code_of_each_route_is_listed():
    paths = json.loads(SAVED.read_text())["paths"]
    expect = {
        ("post", "/forms/{form_key}"): {202, 200, 303, 400, 403, 404, 409, 413, 415, 422, 429, 503},
        # once the signature holds, nothing is refused: 202 (queued, or recorded FAILED/SKIPPED) or 200
        ("post", "/webhooks/{source}"): {202, 200, 401, 404, 413, 503},
        ("get", "/orders/{tracking_id}"): {200, 404, 503},
        ("options", "/forms/{form_key}"): {204, 403, 503},
    }
    for (method, path), codes in expect.items():
        assert {int(c) for c in paths[path][method]["responses"]} >= codes, (method, path)


def test_error_answers_match_the_error_schema(harness):
    """Real refusals from the running intake validate against the document's error body."""
    doc = _served(harness)
    error_schema = {"$ref": "#/components/schemas/ErrorBody", "components": doc["components"]}
    refusals = [
        harness.post("/forms/fk_unknown000", "{}", {"Content-Type": "application/json"}),
        harness.post("/forms/fk_demo0001", "{", {"Content-Type": "application/json"}),
        harness.post("/forms/fk_demo0001", '{"email": "x"}', {"Content-Type": "application/json"}),
        harness.post("/forms/fk_demo0001", "x", {"Content-Type": "text/plain"}),
        harness.post("/webhooks/partner-demo", "{}", {"Content-Type": "application/json"}),
        harness.get("/orders/ob_" + "0" * 32),
        harness.get("/no/such/route"),
    ]
    assert [r.status_code for r in refusals] == [404, 400, 422, 415, 401, 404, 404]
    for r in refusals:
        jsonschema.validate(r.json(), error_schema)
    assert refusals[2].json()["error"]["fields"][0]["field"] == "email"
    assert refusals[-1].json()["error"]["code"] == "NOT_FOUND"


def test_request_models_describe_what_the_intake_accepts(harness):
    """A body built from the document's form schema is accepted: the document is not aspirational."""
    body = {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address": {"address1": "12 Analytical Row", "city": "London", "zip": "N1 9GU", "country": "GB"},
        "items": [{"sku": "TEE-BLUE-M", "quantity": 1}],
    }
    openapi.FormSubmission.model_validate(body)
    r = harness.post("/forms/fk_demo0001", json.dumps(body), {"Content-Type": "application/json"})
    assert r.status_code == 202
    harness.drain(until=harness.final(r.json()["tracking_id"]))
    jsonschema.validate(
        r.json(), {"$ref": "#/components/schemas/AcceptedBody", "components": _served(harness)["components"]}
    )
