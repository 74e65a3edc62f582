"""Exactly once, nothing lost: the real dispatcher under the faults that really happen.

Each test runs the dispatcher against moto's server and the sandboxes, counts provider orders
and outcomes at the end, and records what it observed. The last test renders the fault matrix
and checks it against `docs/reliability.md` (`UPDATE_DOCS=1 make test` rewrites it), so the
document cannot go stale.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orderbridge.exceptions import CredentialsError
from orderbridge.models.outcome import OutcomeStatus
from tests.factories import tracking_id_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
MATRIX: dict[str, tuple[str, str, str]] = {}  # test name -> (fault, expected, observed)


def observe(request: pytest.FixtureRequest, fault: str, expected: str, observed: str) -> None:
    MATRIX[request.node.name] = (fault, expected, observed)


def event(route: str = "default") -> tuple[str, str]:
    ext = f"REL-{uuid.uuid4().hex[:10]}"
    order = {
        "external_order_id": ext,
        "buyer": {"email": "rel@example.com"},
        "billing_address": {
            "first_name": "R",
            "last_name": "L",
            "address1": "1 Main St",
            "city": "Austin",
            "province": "TX",
            "zip": "78701",
            "country": "US",
        },
        "lines": [{"sku": "MUG-001", "quantity": 1}],
    }
    return json.dumps({"source": "erp", "route": route, "order": order}), tracking_id_for("erp", ext)


def bc_orders(harness, tracking_id: str) -> list[dict[str, Any]]:
    return harness.orders_with_reference(tracking_id)


def summary(harness, tracking_id: str) -> str:
    [o] = harness.outcomes(tracking_id)
    return f"{len(bc_orders(harness, tracking_id))} order, {o.status.value}, {o.attempts} attempt(s)"


# --- 1. duplicates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("copies", [2, 3, 5])
def test_duplicate_deliveries_sequential(harness, request, copies):
    body, tracking_id = event()
    for _ in range(copies):
        harness.send(body)
        harness.drain()
    assert len(bc_orders(harness, tracking_id)) == 1
    assert harness.outcomes(tracking_id)[0].status is OutcomeStatus.SUCCEEDED
    observe(
        request,
        f"same event delivered {copies}x, one after another",
        "1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


@pytest.mark.parametrize("copies", [2, 3, 5])
def test_duplicate_deliveries_concurrent_workers(harness, request, copies):
    """`copies` copies on the queue, `copies` dispatcher instances polling at once."""
    body, tracking_id = event()
    for _ in range(copies):
        harness.send(body)
    poller = harness.system.poller
    handlers = [poller.new_handler() for _ in range(copies)]
    start = threading.Barrier(copies)
    errors: list[BaseException] = []

    def worker(handler: Any) -> None:
        try:
            start.wait()
            for _ in range(30):
                poller.poll_once(wait_seconds=0, handler=handler)
                if harness.final(tracking_id)():
                    return
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(h,)) for h in handlers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    harness.drain()
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        f"same event {copies}x on the queue, {copies} dispatchers at once",
        "1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


# --- 2. unknown results ------------------------------------------------------------------------------


def test_connection_dropped_after_create(harness, request):
    harness.fault("bigcommerce", "drop_after_create")
    body, tracking_id = event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        "provider creates the order, connection drops before the answer",
        "lookup by external_order_id finds it: 1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


def test_provider_answers_after_the_client_timeout(harness, request):
    harness.fault("bigcommerce", "timeout", seconds=3)  # client read timeout is 2 s in the tests
    body, tracking_id = event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id), timeout=40)
    assert len(bc_orders(harness, tracking_id)) == 1
    [o] = harness.outcomes(tracking_id)
    assert o.status is OutcomeStatus.SUCCEEDED and any(h.error_code == "TIMEOUT" for h in o.history)
    observe(
        request,
        "provider answers after the client timed out (order created late)",
        "lookup finds it: 1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


# --- 3. killed between the provider's answer and the outcome write ------------------------------------


def test_killed_after_provider_answered_before_outcome_written(harness, request, monkeypatch):
    store = harness.system.dispatcher.dispatcher.outcomes
    real_finish = store.finish
    calls = {"n": 0}

    def dies_once(**kw: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated: function killed after the provider answered")
        return real_finish(**kw)

    monkeypatch.setattr(store, "finish", dies_once)
    body, tracking_id = event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id), timeout=40)
    assert len(bc_orders(harness, tracking_id)) == 1
    [o] = harness.outcomes(tracking_id)
    assert o.status is OutcomeStatus.SUCCEEDED and o.attempts == 2
    observe(
        request,
        "function dies after the provider answered, before the outcome is written",
        "lease expires, next delivery finds the order: 1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


# --- 4. provider errors and rate limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "label"),
    [
        ("error_500", "provider answers 500"),
        ("rate_limit", "provider answers 429 with X-Retry-After"),
        ("rate_limit_no_header", "provider answers 429 without a retry header"),
    ],
)
def test_provider_errors_are_retried_with_backoff(harness, request, mode, label):
    harness.fault("bigcommerce", mode, count=2)
    body, tracking_id = event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id), timeout=40)
    [o] = harness.outcomes(tracking_id)
    assert o.status is OutcomeStatus.SUCCEEDED and o.attempts == 3
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        f"{label} twice",
        "retried with backoff: 1 order, SUCCEEDED after 3 attempts",
        summary(harness, tracking_id),
    )


# --- 5. our own dependencies ----------------------------------------------------------------------------


def test_dynamodb_throttles_the_outcome_write(harness, request, monkeypatch):
    store = harness.system.dispatcher.dispatcher.outcomes
    real_finish = store.finish
    calls = {"n": 0}

    def throttled_once(**kw: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}},
                "UpdateItem",
            )
        return real_finish(**kw)

    monkeypatch.setattr(store, "finish", throttled_once)
    body, tracking_id = event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id), timeout=40)
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        "DynamoDB throttles the outcome write (after botocore's own retries)",
        "record retried, lookup finds the order: 1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


@pytest.mark.parametrize("secret", ["provider credentials", "tracking id key"])
def test_secrets_manager_unavailable(harness, request, monkeypatch, secret):
    creds = harness.system.dispatcher.dispatcher.credentials
    real_get = creds.get
    calls = {"n": 0}
    prefix = "orderbridge/providers/" if secret == "provider credentials" else "arn:"

    def unavailable_once(secret_id: str, *, refresh: bool = False) -> dict[str, Any]:
        calls["n"] += secret_id.startswith(prefix)
        if calls["n"] == 1 and secret_id.startswith(prefix):
            raise CredentialsError(f"cannot read secret {secret_id!r}: EndpointConnectionError")
        return real_get(secret_id, refresh=refresh)

    monkeypatch.setattr(creds, "get", unavailable_once)
    if secret == "tracking id key":  # cached for SECRET_MAX_AGE_SECONDS: make the next read a real one
        monkeypatch.setattr(creds, "_max_age", 0)
    body, tracking_id = event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id), timeout=40)
    [o] = harness.outcomes(tracking_id)
    assert o.status is OutcomeStatus.SUCCEEDED and calls["n"] >= 1
    assert len(bc_orders(harness, tracking_id)) == 1
    if secret == "provider credentials":
        assert any(h.error_code == "CREDENTIALS_UNAVAILABLE" for h in o.history)
    observe(
        request,
        f"Secrets Manager unavailable ({secret})",
        "retried: 1 order, SUCCEEDED",
        summary(harness, tracking_id),
    )


def test_credential_rotated_mid_run(harness, request):
    import requests

    from orderbridge import clients

    sm = clients.client("secretsmanager")
    secret_id = "orderbridge/providers/bigcommerce-demo"
    admin = f"{harness.sandbox}/_sandbox/bigcommerce/config"
    requests.post(
        admin, json={"accounts": {"demo123": {"token": "rotated-again"}}}, timeout=10
    ).raise_for_status()
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps({"access_token": "rotated-again"}))
    try:
        body, tracking_id = event()
        harness.send(body)
        harness.drain(until=harness.final(tracking_id))
        [o] = harness.outcomes(tracking_id)
        assert o.status is OutcomeStatus.SUCCEEDED and o.attempts == 1
        observe(
            request,
            "credential rotated mid-run (401, then the new secret)",
            "secret re-read once: 1 order, SUCCEEDED",
            summary(harness, tracking_id),
        )
    finally:
        requests.post(admin, json={"accounts": {"demo123": {"token": "local-bigcommerce-token"}}}, timeout=10)
        sm.put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"access_token": "local-bigcommerce-token"})
        )


# --- 6. poison messages ------------------------------------------------------------------------------


def test_poison_messages_do_not_block_their_batch(harness, request):
    from orderbridge import wiring

    good, good_id = event()
    unroutable, unroutable_id = event(route="nowhere")
    for body in ("not json at all", unroutable, good):
        harness.send(body)
    harness.drain()
    assert harness.outcomes(good_id)[0].status is OutcomeStatus.SUCCEEDED
    [bad] = harness.outcomes(unroutable_id)
    assert bad.status is OutcomeStatus.FAILED_PERMANENT and bad.attempts == 1
    malformed = [
        o
        for o in wiring.outcome_store().list_by_status(OutcomeStatus.FAILED_PERMANENT)
        if o.error_code == "MALFORMED_EVENT"
    ]
    assert malformed and all(o.attempts == 1 for o in malformed)
    dead = harness.take_dead_letters()
    parked = {m["MessageAttributes"]["reason"]["StringValue"] for m in dead if "MessageAttributes" in m}
    assert {"MALFORMED_EVENT", "UNKNOWN_ROUTE"} <= parked
    observe(
        request,
        "malformed body and unknown route in a batch with a good order",
        "good order SUCCEEDED; poison FAILED_PERMANENT once, parked on the DLQ",
        f"good: {summary(harness, good_id)}; poison: {bad.status.value}, {bad.attempts} attempt",
    )


# --- 7. out of tries ----------------------------------------------------------------------------------


def test_retries_exhausted_land_in_the_dead_letter_queue(harness, request):
    harness.fault("bigcommerce", "error_500", count=50)
    body, tracking_id = event()
    harness.send(body)
    harness.drain(timeout=40)
    harness.clear_faults()
    [o] = harness.outcomes(tracking_id)
    assert o.status is OutcomeStatus.DEAD_LETTERED
    assert body in [m["Body"] for m in harness.take_dead_letters()]
    observe(
        request,
        "provider keeps failing (500) past MaxReceiveCount",
        "DEAD_LETTERED, message on the DLQ, 0 orders",
        f"{len(bc_orders(harness, tracking_id))} orders, {o.status.value}, {o.attempts} attempts, on the DLQ",
    )


# --- the report ----------------------------------------------------------------------------------------


def render(matrix: dict[str, tuple[str, str, str]]) -> str:
    lines = [
        "# Reliability: the fault matrix",
        "",
        "Generated by `tests/test_reliability.py` (the last test checks this file; `UPDATE_DOCS=1 make test`",
        "rewrites it). Every row ran the real dispatcher against moto's server and the provider sandboxes",
        "over HTTP, then counted the provider's orders and read the outcome table.",
        "",
        "| fault | expected | observed | test |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {f} | {e} | {o} | `{name}` |" for name, (f, e, o) in matrix.items()]
    lines += [
        "",
        "Per-provider unknown results (`tests/test_providers_pipeline.py`): BigCommerce reconciles by",
        "`GET /v2/orders?external_order_id=`, Threekit by `GET /api/orders?platform=`, Lana by replaying",
        "the byte-identical request with the same `Idempotency-Key`. Komerza has no lookup by reference:",
        "after an unknown result the delivery is parked as `FAILED_PERMANENT / NEEDS_REVIEW` (and on",
        "the DLQ) for a person to check, never re-sent: the residual risk is a person's check, not a",
        "double order.",
        "",
    ]
    return "\n".join(lines)


def test_zz_fault_matrix_document_is_current():
    if len(MATRIX) < 15:
        pytest.skip(f"run the whole file to check the matrix (have {len(MATRIX)} rows)")
    text = render(MATRIX)
    if os.environ.get("UPDATE_DOCS"):
        DOC.write_text(text)
    assert DOC.exists() and DOC.read_text() == text, "docs/reliability.md is stale: UPDATE_DOCS=1 make test"
