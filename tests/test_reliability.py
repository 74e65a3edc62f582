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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
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


TRACKED: set[str] = set()  # every order this module's harness rows made, for the settle check


def summary(harness, tracking_id: str) -> str:
    TRACKED.add(tracking_id)
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


# --- 8. one storefront order, one identity: every way in, any re-run ----------------------------------

SHOPIFY_HOOK = "/webhooks/shopify-demo"
SHOPIFY_SECRET = "shpss_local_demo_secret"
FORM = "/forms/fk_demo0001"


def shopify_order(order_id: int, **changes: Any) -> bytes:
    order = {
        "id": order_id,
        "email": "linus@example.com",
        "currency": "USD",
        "billing_address": {
            "first_name": "Linus",
            "last_name": "T",
            "address1": "1 Main St",
            "city": "Austin",
            "province_code": "TX",
            "zip": "78701",
            "country_code": "US",
        },
        "line_items": [{"sku": "MUG-001", "title": "Mug", "quantity": 1, "price": "12.50"}],
    } | changes
    return json.dumps(order).encode()


def shopify_headers(body: bytes) -> dict[str, str]:
    from orderbridge.intake.signatures import sign_shopify

    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Event-Id": uuid.uuid4().hex,  # each delivery attempt of Shopify's has its own
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
    }


def new_shop_order_id() -> int:
    return int(uuid.uuid4().int % 10**12)


def reconfigure(harness, config: dict[str, Any] | None = None) -> None:
    """Upload a configuration (default: config/local.json) and let the functions' cache expire."""
    harness.system.upload_config(config)  # the functions of this process read it on their next call


@contextmanager
def refused_once(service: str, operation: str) -> Iterator[dict[str, int]]:
    """The next `operation` call of this process's `service` client fails as AWS's own 500 would."""
    from orderbridge import clients

    events = clients.client(service).meta.events
    name = f"before-call.{service}.{operation}"
    seen = {"refused": 0}

    def refuse(**_: Any) -> None:
        if not seen["refused"]:
            seen["refused"] += 1
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "refused"}}, operation)

    events.register_first(name, refuse)
    try:
        yield seen
    finally:
        events.unregister(name, refuse)


@pytest.mark.parametrize(
    ("way_in", "service", "operation"),
    [
        ("webhook", "dynamodb", "Query"),
        ("webhook", "sqs", "SendMessage"),
        ("webhook", "dynamodb", "PutItem"),
        ("form", "sqs", "SendMessage"),
        ("form", "dynamodb", "PutItem"),
    ],
)
def test_intake_write_refused_then_sender_retries(harness, request, way_in, service, operation):
    """Each of the intake's reads and writes refused once; the sender retries the same order."""
    if way_in == "webhook":
        body = shopify_order(new_shop_order_id())
        path, headers = SHOPIFY_HOOK, lambda: shopify_headers(body)
    else:
        body = json.dumps(
            {
                "submission_id": uuid.uuid4().hex,
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "address": {"address1": "1 Main St", "city": "Austin", "zip": "78701", "country": "US"},
                "items": [{"sku": "MUG-001", "quantity": 1}],
            }
        ).encode()
        path, headers = FORM, lambda: {"Content-Type": "application/json"}
    with refused_once(service, operation) as seen:
        first = harness.post(path, body, headers())
    assert seen["refused"] == 1
    assert first.status_code in (202, 503), first.text
    if first.status_code == 503:  # ours, not the sender's: JSON with a code, and a retry is safe
        assert first.json()["error"]["code"] == "SERVICE_UNAVAILABLE" and first.headers["Retry-After"]
    again = harness.post(path, body, headers())
    assert again.status_code == 202, again.text
    tracking_id = again.json()["tracking_id"]
    if first.status_code == 202:
        assert first.json()["tracking_id"] == tracking_id
    harness.drain(until=harness.final(tracking_id))
    harness.drain()
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        f"{way_in}: intake's {service} {operation} refused once, then the sender retries",
        "same tracking id: 1 order, SUCCEEDED",
        f"first answer {first.status_code}, retry 202: {summary(harness, tracking_id)}",
    )


def test_same_shopify_order_again_with_no_time_window(harness, request):
    """Redelivered after any time: the outcome record is the ledger (there is no 72-hour window)."""
    body = shopify_order(new_shop_order_id())
    first = harness.post(SHOPIFY_HOOK, body, shopify_headers(body))
    tracking_id = first.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    # nothing but the outcome record remembers the order; a later delivery still finds it
    later = harness.post(SHOPIFY_HOOK, body, shopify_headers(body))
    assert later.status_code == 202 and later.json() == first.json() | {"duplicate": True}
    harness.drain()
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        "Shopify redelivers an order long after the first delivery (new event id)",
        "same tracking id, duplicate: 1 order",
        f"duplicate={later.json()['duplicate']}: {summary(harness, tracking_id)}",
    )


def test_one_shop_through_its_webhook_and_its_import(harness, request):
    """A shop's webhook and its file import name the same order (configured `shop`)."""
    from orderbridge import clients, wiring

    shop = f"acme-{uuid.uuid4().hex[:6]}"
    config = harness.system.local_config()
    config["webhooks"]["shopify-demo"]["shop"] = shop
    mapping = config["imports"]["erp-files"]["mapping"]
    prefix = f"tests/{shop}/"
    config["imports"][shop] = {
        "kind": "s3",
        "route": "default",
        "prefix": prefix,
        "shop": shop,
        "mapping": mapping,
    }
    reconfigure(harness, config)
    try:
        order_ids = [new_shop_order_id(), new_shop_order_id()]
        for order_id in order_ids:  # the webhook has the first; the file has both
            body = shopify_order(order_id)
            assert harness.post(SHOPIFY_HOOK, body, shopify_headers(body)).status_code == 202
        row = "2026-01-05T09:00:00Z,USD,linus@example.com,Linus,T,1 Main St,Austin,78701,US,MUG-001,1,12.50"
        rows = [f"{n},{row}" for n in order_ids]
        header = (
            "order_number,placed_at,currency,email,first_name,last_name,address1,city,zip,country,"
            "sku,qty,unit_price"
        )
        harness.drain()
        clients.client("s3").put_object(
            Bucket=harness.system.import_bucket,
            Key=prefix + "a.csv",
            Body="\n".join([header, *rows]).encode(),
        )
        run = wiring.import_service().run_source(shop)
        assert (run.orders_imported, run.orders_skipped) == (0, 2)
        # and the other way round: a webhook for an order the feed already brought
        third = new_shop_order_id()
        clients.client("s3").put_object(
            Bucket=harness.system.import_bucket,
            Key=prefix + "b.csv",
            Body="\n".join([header, rows[0].replace(str(order_ids[0]), str(third))]).encode(),
        )
        assert wiring.import_service().run_source(shop).orders_imported == 1
        harness.drain()
        body = shopify_order(third)
        late = harness.post(SHOPIFY_HOOK, body, shopify_headers(body))
        assert late.json()["duplicate"] is True
        harness.drain()
        counts = [len(bc_orders(harness, tracking_id_for(shop, str(n)))) for n in [*order_ids, third]]
        assert counts == [1, 1, 1]
    finally:
        reconfigure(harness)
    observe(
        request,
        "one shop: its webhook then its file import, and an import then its webhook",
        "1 order each",
        f"provider orders per shop order: {counts}",
    )


PROVIDER_ROUTES = {"bigcommerce": "default", "threekit": "threekit", "lana": "lana", "komerza": "komerza"}


def test_provider_finishes_late(harness, request):
    """The provider answers after the client's timeout and creates the order later still.

    Delays of 1.5, 2, 3 and 6 client timeouts (15, 20, 30 and 60 s at the deployed 10 s; the tests'
    timeout is 2 s), for every provider at once; the reconcile window is 30 s here (deployed: 300).
    """
    config = harness.system.local_config()
    for destination in config["destinations"].values():
        destination["reconcile_window_seconds"] = 30
    reconfigure(harness, config)
    seen: dict[str, list[str]] = {p: [] for p in PROVIDER_ROUTES}
    try:
        for delay in (3, 4, 6, 12):
            sent = {}
            for provider, route in PROVIDER_ROUTES.items():
                harness.fault(provider, "timeout", seconds=delay)
                body, tracking_id = event(route)
                harness.send(body)
                sent[provider] = tracking_id
            ids = list(sent.values())
            TRACKED.update(ids)
            harness.drain(until=lambda ids=ids: all(harness.final(t)() for t in ids), timeout=90)
            for provider, tracking_id in sent.items():
                [o] = harness.outcomes(tracking_id)
                created = provider_order_count(harness, provider, tracking_id)
                assert created == 1 and o.status is OutcomeStatus.SUCCEEDED, (provider, delay, o)
                seen[provider].append(f"{delay}s: {created} order, {o.status.value}")
    finally:
        reconfigure(harness)
        harness.take_dead_letters()
    observe(
        request,
        "provider answers after the timeout and creates the order 1.5x, 2x, 3x, 6x the timeout later",
        "no resend inside the reconcile window, found by lookups: 1 order each, SUCCEEDED",
        "; ".join(f"{p} " + ", ".join(v) for p, v in seen.items()),
    )


def provider_order_count(harness, provider: str, tracking_id: str) -> int:
    return sum(tracking_id in json.dumps(o) for o in harness.sandbox_orders(provider))


def test_unknown_result_on_the_last_try_is_never_failed(harness, request):
    config = harness.system.local_config()
    config["destinations"]["bc-demo"]["reconcile_window_seconds"] = 30
    reconfigure(harness, config)
    try:
        harness.fault("bigcommerce", "error_500", count=2)
        body, tracking_id = event()
        harness.send(body)
        harness.drain(until=lambda: harness.outcomes(tracking_id)[0].attempts >= 2, timeout=30)
        harness.fault("bigcommerce", "timeout", seconds=5)  # the last try: created after the timeout
        harness.drain(until=lambda: harness.outcomes(tracking_id)[0].unknown_result, timeout=30)
        checking = harness.get(f"/orders/{tracking_id}").json()["status"]
        harness.drain(until=harness.final(tracking_id), timeout=60)
    finally:
        reconfigure(harness)
    [o] = harness.outcomes(tracking_id)
    assert checking == "CHECKING" and o.status is OutcomeStatus.SUCCEEDED
    assert len(bc_orders(harness, tracking_id)) == 1
    TRACKED.add(tracking_id)
    assert body not in [m["Body"] for m in harness.take_dead_letters()]
    observe(
        request,
        "unknown result on the last try (500, 500, then created after the timeout)",
        "CHECKING while looked for, never FAILED: 1 order, SUCCEEDED",
        # no attempt count: how many lookups the window takes depends on the machine's pace
        f"status while checking: {checking}; {len(bc_orders(harness, tracking_id))} order, {o.status.value}",
    )


def test_a_fault_of_ours_in_the_dispatcher_is_recorded_never_stuck(harness, request, monkeypatch):
    """A bug of ours mid-delivery (here: the adapter raises KeyError, as a catalog entry with a typo
    did before the configuration was checked at load time)."""
    from orderbridge.providers.bigcommerce import BigCommerceProvider

    def broken(self: Any, delivery: Any) -> Any:
        raise KeyError("product_id")

    monkeypatch.setattr(BigCommerceProvider, "build_create", broken)
    body, tracking_id = event()
    harness.send(body)
    harness.drain(timeout=40)
    monkeypatch.undo()
    [o] = harness.outcomes(tracking_id)
    assert o.status is OutcomeStatus.DEAD_LETTERED and o.error_code == "INTERNAL_ERROR"
    assert "KeyError" in (o.error_message or "") and not bc_orders(harness, tracking_id)
    assert body in [m["Body"] for m in harness.take_dead_letters()]
    observe(
        request,
        "a fault of ours mid-delivery (the adapter raises KeyError)",
        "never stuck IN_FLIGHT: retried, then DEAD_LETTERED with INTERNAL_ERROR, on the DLQ",
        f"{o.status.value}, {o.error_code}, {o.attempts} attempts, 0 orders, on the DLQ",
    )


def test_too_little_time_left_the_record_is_not_started(harness, request):
    from orderbridge import clients
    from orderbridge_local.poller import to_record

    body, tracking_id = event()
    harness.send(body)
    sqs = clients.client("sqs")
    [message] = sqs.receive_message(
        QueueUrl=harness.system.queue_url, AttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    record = SQSRecord(to_record(message, harness.system.resources.queue_arns["OrderQueue"]))
    harness.system.dispatcher.dispatcher.process(record, remaining_ms=lambda: 500)
    sqs.delete_message(QueueUrl=harness.system.queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert harness.outcomes(tracking_id) == [] and not bc_orders(harness, tracking_id)
    copy = sqs.receive_message(QueueUrl=harness.system.queue_url, AttributeNames=["All"], WaitTimeSeconds=2)
    [again] = copy["Messages"]
    assert again["Body"] == body and again["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.change_message_visibility(
        QueueUrl=harness.system.queue_url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0
    )
    harness.drain(until=harness.final(tracking_id))
    observe(
        request,
        "a record reached with less time left than its provider calls need",
        "not started; a fresh copy goes back with its tries intact, then 1 order",
        f"copy's receive count {again['Attributes']['ApproximateReceiveCount']}; "
        f"{summary(harness, tracking_id)}",
    )


def test_a_batch_of_routine_retries_is_not_a_function_error(harness, request):
    from orderbridge import clients
    from orderbridge_local.lambda_runtime import LocalContext
    from orderbridge_local.poller import to_record

    harness.fault("bigcommerce", "rate_limit", count=1)
    body, tracking_id = event()
    harness.send(body)
    [message] = clients.client("sqs").receive_message(
        QueueUrl=harness.system.queue_url, AttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    records = {"Records": [to_record(message, harness.system.resources.queue_arns["OrderQueue"])]}
    answer = harness.system.dispatcher.lambda_handler(records, LocalContext("DispatcherFunction", 60))
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    harness.drain(until=harness.final(tracking_id))
    assert len(bc_orders(harness, tracking_id)) == 1
    observe(
        request,
        "a one-record batch whose record gets a 429",
        "the record is reported for retry, the invocation succeeds (no Lambda error): 1 order",
        f"answered batchItemFailures, no error; {summary(harness, tracking_id)}",
    )


def test_same_submission_with_other_content_is_a_conflict(harness, request):
    form = {
        "submission_id": uuid.uuid4().hex,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address": {"address1": "1 Main St", "city": "Austin", "zip": "78701", "country": "US"},
        "items": [{"sku": "MUG-001", "quantity": 1}],
    }
    headers = {"Content-Type": "application/json"}
    first = harness.post(FORM, json.dumps(form), headers)
    same = harness.post(FORM, json.dumps(form), headers)
    other = harness.post(FORM, json.dumps(form | {"items": [{"sku": "MUG-001", "quantity": 5}]}), headers)
    assert same.json() == first.json() | {"duplicate": True}
    assert other.status_code == 409, other.text
    error = other.json()["error"]
    assert error["code"] == "ORDER_CONFLICT" and [f["field"] for f in error["fields"]] == ["items"]
    tracking_id = first.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    [created] = bc_orders(harness, tracking_id)
    assert created["request"]["products"][0]["quantity"] == 1
    observe(
        request,
        "the same form submission id posted again with other items",
        "409 ORDER_CONFLICT naming `items`; the first order stands: 1 order",
        f"{other.status_code} {error['code']} {[f['field'] for f in error['fields']]}; "
        f"{summary(harness, tracking_id)}",
    )


# --- 9. real process kills: the functions' process SIGKILLed where it hurts ------------------------


@pytest.fixture(scope="module")
def crash_run() -> Iterator[Any]:
    from tests.crashlib import CrashableRun

    with CrashableRun() as run:
        yield run


@pytest.fixture
def run(crash_run: Any) -> Iterator[Any]:
    """Shared moto + sandboxes in their own processes; no functions process outlives a test."""
    crash_run.kill()
    yield crash_run
    crash_run.kill()
    crash_run.clear_queue()
    crash_run.upload_config()


SIGKILLED = -9


def form_post(submission_id: str) -> bytes:
    return json.dumps(
        {
            "submission_id": submission_id,
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "address": {"address1": "1 Main St", "city": "Austin", "zip": "78701", "country": "US"},
            "items": [{"sku": "MUG-001", "quantity": 1}],
        }
    ).encode()


@pytest.mark.parametrize("way_in", ["webhook", "form"])
def test_intake_killed_after_it_queued_the_order_then_the_sender_retries(run, request, way_in):
    if way_in == "webhook":
        body, path = shopify_order(new_shop_order_id()), SHOPIFY_HOOK
        headers = lambda: shopify_headers(body)  # noqa: E731 - each delivery attempt signs anew
    else:
        body, path = form_post(uuid.uuid4().hex), FORM
        headers = lambda: {"Content-Type": "application/json"}  # noqa: E731
    run.start_functions(kill_at="after-call.sqs.SendMessage#1")
    with pytest.raises(requests_errors()):
        run.post(path, body, headers())
    assert run.wait_dead() == SIGKILLED
    run.restart()  # Lambda's fresh environment; the sender retries the same order
    again = run.post(path, body, headers())
    assert again.status_code == 202, again.text
    tracking_id = again.json()["tracking_id"]
    [outcome] = run.wait_final(tracking_id, timeout=40)
    run.wait_drained(timeout=40)
    orders = run.orders_with_reference(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED and len(orders) == 1
    observe(
        request,
        f"{way_in}: intake SIGKILLed right after it queued the order; the sender retries",
        "same tracking id: 1 order, SUCCEEDED",
        f"retry: 202, duplicate={again.json()['duplicate']}; {len(orders)} order, {outcome.status.value}",
    )


def requests_errors() -> type[Exception]:
    import requests

    return requests.ConnectionError


def test_dispatcher_killed_after_the_provider_answered(run, request):
    body, tracking_id = crash_event(run)
    run.send(body)
    run.start_functions(kill_at="provider-answered.bigcommerce.POST")
    assert run.wait_dead() == SIGKILLED
    assert len(run.orders_with_reference(tracking_id)) == 1  # the provider has it; no outcome says so
    run.restart()
    [outcome] = run.wait_final(tracking_id, timeout=40)
    orders = run.orders_with_reference(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED and len(orders) == 1
    assert str(orders[0]["order"]["id"]) == outcome.provider_order_id
    observe(
        request,
        "dispatcher SIGKILLed after the provider answered, before the outcome was written",
        "lease runs out, the lookup finds it: 1 order, SUCCEEDED",
        f"{len(orders)} order, {outcome.status.value}",  # attempts depend on when the lease ran out
    )


def test_dispatcher_killed_while_waiting_for_a_rate_limit_slot(run, request):
    """An order claimed and then abandoned must be looked up (or, for a provider without a lookup,
    go to a person). The claim comes after the wait, so a worker killed while waiting leaves an
    order that was never claimed: sent once, no lookup, no review."""
    config = json.loads(DOC.parents[1].joinpath("config", "local.json").read_text())
    config["destinations"]["komerza-demo"]["rate_limit"] = {"requests": 1, "per_seconds": 2, "burst": 1}
    run.upload_config(config)
    sent = [crash_event(run, route="komerza") for _ in range(2)]
    for body, _ in sent:
        run.send(body)
    run.start_functions(kill_at="rate-limit-wait")
    assert run.wait_dead(timeout=30) == SIGKILLED
    run.restart()
    finals = [run.wait_final(tracking_id, timeout=40)[0] for _, tracking_id in sent]
    counts = [
        sum(tracking_id in json.dumps(o) for o in run.sandbox_orders("komerza")) for _, tracking_id in sent
    ]
    assert [o.status for o in finals] == [OutcomeStatus.SUCCEEDED] * 2 and counts == [1, 1]
    observe(
        request,
        "dispatcher SIGKILLed while waiting for a Komerza rate-limit slot",
        "nothing claimed during the wait: sent after the restart, not parked for review: 1 order each",
        f"orders {counts}, {[o.status.value for o in finals]}",
    )


def test_dispatcher_killed_mid_batch(run, request):
    sent = [crash_event(run) for _ in range(3)]
    for body, _ in sent:
        run.send(body)
    run.start_functions(kill_at="mid-batch.1")
    assert run.wait_dead() == SIGKILLED
    run.restart()
    finals = [run.wait_final(tracking_id, timeout=40)[0] for _, tracking_id in sent]
    counts = [len(run.orders_with_reference(tracking_id)) for _, tracking_id in sent]
    assert [o.status for o in finals] == [OutcomeStatus.SUCCEEDED] * 3 and counts == [1, 1, 1]
    observe(
        request,
        "dispatcher SIGKILLed after the first record of a batch of 3",
        "the finished record is not sent again: 1 order each, SUCCEEDED",
        f"orders {counts}, {[o.status.value for o in finals]}",
    )


def crash_event(run: Any, route: str = "default") -> tuple[str, str]:
    """A queue event and the tracking id the crash run's functions derive for it."""
    from orderbridge.constants import TRACKING_ID_KEY_SECRET_DEFAULT
    from orderbridge.credentials import CredentialStore
    from orderbridge.identity import OrderIdentity, TrackingIds

    body, _ = event(route)
    ext = json.loads(body)["order"]["external_order_id"]
    ids = TrackingIds.from_secret(
        CredentialStore(secretsmanager_client=run.client("secretsmanager")), TRACKING_ID_KEY_SECRET_DEFAULT
    )
    return body, ids.tracking_id(OrderIdentity.of(shop="erp", source="erp", external_order_id=ext))


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
        "Per-provider unknown results (`tests/test_providers_pipeline.py`, `test_provider_lookups.py`):",
        "BigCommerce reconciles by `GET /v2/orders?external_order_id=` (every answer's id checked),",
        "Threekit by `GET /api/orders?platform=` (the whole platform object the create sent), Lana by its",
        "order search on the tag `orderbridge:<tracking id>`, Komerza by listing the buyer's orders in a",
        "date window and reading each one's metadata; none is sent again until the destination's",
        "reconcile window has passed since the create of unknown result. Several matches, an answer",
        "that cannot be checked, or a provider without a lookup park the delivery as `NEEDS_REVIEW`",
        "(on the DLQ; the storefront reads `CHECKING`) for `orderbridge review resolve`: the residual",
        "risk is a person's check, not a double order. The real kills ran the functions in their own",
        "process (`tests/crashlib.py`, `orderbridge-local up --processes`) and SIGKILLed it at the named",
        "kill point. At the deployed 10 s timeout, `bench/late_provider.py` runs the 15/20/30/60 s cases.",
        "",
    ]
    return "\n".join(lines)


def test_zy_nothing_is_left_pending_once_the_system_settles(harness, request):
    """After the rows above, no order of theirs sits in RECEIVED or IN_FLIGHT."""
    if len(TRACKED) < 20:
        pytest.skip("run the whole file")
    harness.drain(timeout=60)
    pending = {
        t: [o.status.value for o in harness.outcomes(t)]
        for t in TRACKED
        if any(o.status in (OutcomeStatus.RECEIVED, OutcomeStatus.IN_FLIGHT) for o in harness.outcomes(t))
    }
    assert not pending
    observe(
        request,
        f"the system settles after the {len(TRACKED)} orders above",
        "0 records left in RECEIVED or IN_FLIGHT",
        f"{len(pending)} left in RECEIVED or IN_FLIGHT",
    )


def test_zz_fault_matrix_document_is_current():
    if len(MATRIX) < 30:
        pytest.skip(f"run the whole file to check the matrix (have {len(MATRIX)} rows)")
    text = render(MATRIX)
    if os.environ.get("UPDATE_DOCS"):
        DOC.write_text(text)
    assert DOC.exists() and DOC.read_text() == text, "docs/reliability.md is stale: UPDATE_DOCS=1 make test"
