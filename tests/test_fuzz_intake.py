"""schemathesis against the running local intake: no 5xx, every answer as its OpenAPI document says.

Bounded for CI: FUZZ_EXAMPLES examples per operation (env `ORDERBRIDGE_FUZZ_EXAMPLES` raises it).
Forms are fuzzed on a real form key and webhooks on a real source, so generated bodies reach the
parsers; a second test signs generated webhook bodies so the code behind the signature check is
fuzzed too (unsigned ones must be a 401, never a 5xx).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from standardwebhooks.webhooks import Webhook

from orderbridge.intake.signatures import sign_shopify, sign_stripe
from orderbridge_local.setup import load_setup

FUZZ_EXAMPLES = int(os.environ.get("ORDERBRIDGE_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SECRETS = load_setup(Path(__file__).resolve().parents[1] / "config" / "local.json").secrets
SEEN: set[int | str] = set()  # status codes the fuzzer got back, and "recorded FAILED"
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    suppress_health_check=list(HealthCheck),
    database=None,
)


ROOT = Path(__file__).resolve().parents[1]
# The saved document (tests/test_openapi.py proves it is what the intake serves).
schema = schemathesis.openapi.from_path(
    ROOT / "openapi" / "intake.openapi.json",
    config=schemathesis.Config.from_dict(
        {"parameters": {"path.form_key": "fk_demo0001", "path.source": "partner-demo"}}
    ),
)


@pytest.fixture(scope="module", autouse=True)
def _leave_the_queue_empty(harness):
    """Orders the fuzzer got accepted are delivered (or parked) before other tests in this worker run."""
    yield
    # generated bodies got past the parsers into field validation, not only 4xx at the door: a
    # form's 422, or a signed webhook's order recorded as FAILED with its field reasons (202)
    assert {422, "recorded FAILED"} & SEEN, SEEN
    harness.drain(timeout=60)
    harness.take_dead_letters()


@schema.parametrize()
@FUZZ_SETTINGS
def test_intake_answers_every_generated_request_as_documented(case, harness):
    SEEN.add(case.call_and_validate(base_url=harness.api, checks=CHECKS).status_code)


# --- signed webhooks: the parsers behind the signature check ----------------------------------


def _standard(body: bytes) -> dict[str, str]:
    (secret,) = SECRETS["orderbridge/webhooks/partner-demo"]["secrets"]
    msg_id = f"msg_{time.time_ns()}"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": Webhook(secret).sign(msg_id, datetime.now(UTC), body.decode()),
    }


def _shopify(body: bytes) -> dict[str, str]:
    (secret,) = SECRETS["orderbridge/webhooks/shopify-demo"]["secrets"]
    return {"X-Shopify-Hmac-Sha256": sign_shopify(body, secret), "X-Shopify-Topic": "orders/create"}


def _stripe(body: bytes) -> dict[str, str]:
    (secret,) = SECRETS["orderbridge/webhooks/stripe-demo"]["secrets"]
    return {"Stripe-Signature": sign_stripe(body, secret)}


SIGNERS = {"partner-demo": _standard, "shopify-demo": _shopify, "stripe-demo": _stripe}


def test_signed_webhook_bodies_never_fail_the_server(harness):
    operation = schema["/webhooks/{source}"]["POST"]

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(), source=st.sampled_from(sorted(SIGNERS)))
    def run(case, source):
        body = json.dumps(case.body).encode()
        headers = {"Content-Type": "application/json", **SIGNERS[source](body)}
        case.path_parameters = {"source": source}
        response = requests.post(f"{harness.api}/webhooks/{source}", data=body, headers=headers, timeout=30)
        assert response.status_code != 401, response.text  # the signature held: the parser was reached
        case.validate_response(response, checks=CHECKS)
        SEEN.add(response.status_code)
        if response.status_code == 202 and response.json().get("status") == "FAILED":
            SEEN.add("recorded FAILED")

    run()
