"""The shared real Shopify orders (../shared/cases/shopify/), signed and sent to the local run as
Shopify sends them, through a route to all four providers: each provider's sandbox holds the
order at the buyer's currency and total, or the delivery failed with a code that says why, and a
test notification is recorded and not sent."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from orderbridge.intake.signatures import sign_shopify
from orderbridge.models.outcome import OutcomeStatus
from tests.factories import shared_case

SHOPIFY_SECRET = "shpss_local_demo_secret"
SKUS = {  # the cases' SKUs, mapped to products of each sandbox's demo catalog
    "bc-demo": {
        "IPOD2008GREEN": {"product_id": 111, "variant_id": 77},
        "IPOD2008RED": {"product_id": 111, "variant_id": 78},
        "IPOD2008BLACK": {"product_id": 112},
        "IPOD2008PINK": {"product_id": 112},
    },
}
COPY_FROM = {"lana-demo": "lana", "threekit-demo": "threekit", "komerza-demo": "komerza"}
EXPECTED = {  # case -> status per destination (the provider's own rules decide)
    "order-usd-tax.json": "SUCCEEDED",
    "order-hk-null-zip.json": "SUCCEEDED",
    "order-phone-only-buyer.json": "SUCCEEDED",
}
RESULTS: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module")
def all_providers(harness):
    """A route to every provider, taken by the Shopify webhook source."""
    config = harness.system.local_config()
    destinations = []
    for destination in ("bc-demo", "lana-demo", "threekit-demo", "komerza-demo"):
        catalog = SKUS.get(destination)
        if catalog is None:  # map the cases' SKUs onto the route's existing demo products
            source = config["routes"][COPY_FROM[destination]]["destinations"][0]["catalog"]
            products = list(source.values())
            catalog = {sku: products[i % len(products)] for i, sku in enumerate(SKUS["bc-demo"])}
        destinations.append({"destination": destination, "catalog": catalog})
    config["routes"]["all"] = {"destinations": destinations}
    config["webhooks"]["shopify-demo"]["route"] = "all"
    harness.system.upload_config(config)  # the functions of this process read it on their next call
    yield
    harness.system.upload_config()


def deliver(harness, name: str) -> tuple[str, dict[str, Any]]:
    payload = json.loads(shared_case("shopify", name).read_text())
    payload["id"] = int(uuid.uuid4().int % 10**12)  # a fresh order each run
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Webhook-Id": uuid.uuid4().hex,
    }
    r = harness.post("/webhooks/shopify-demo", body, headers)
    assert r.status_code == 202, r.text
    return r.json()["tracking_id"], payload


def provider_order(harness, provider: str, tracking_id: str) -> dict[str, Any] | None:
    found = [o for o in harness.sandbox_orders(provider) if tracking_id in json.dumps(o)]
    assert len(found) <= 1, f"{provider} has {len(found)} orders for one Shopify order"
    return found[0] if found else None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_real_shopify_order_reaches_every_provider_as_placed(harness, all_providers, name):
    tracking_id, payload = deliver(harness, name)
    harness.drain(until=harness.final(tracking_id), timeout=60)
    outcomes = {o.destination: o for o in harness.outcomes(tracking_id)}
    assert set(outcomes) == {"bc-demo", "lana-demo", "threekit-demo", "komerza-demo"}
    row = {}
    for outcome in outcomes.values():
        provider = outcome.provider
        if outcome.status is OutcomeStatus.SUCCEEDED:
            held = provider_order(harness, provider, tracking_id)
            assert held is not None
            row[provider] = f"SUCCEEDED: {summarise(provider, held)}"
        else:
            assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code, outcome
            assert provider_order(harness, provider, tracking_id) is None
            row[provider] = f"{outcome.status.value} {outcome.error_code}"
    bc = provider_order(harness, "bigcommerce", tracking_id)
    assert bc is not None, row
    stored = bc["order"]
    assert Decimal(str(stored["total_inc_tax"])) == Decimal(payload["total_price"])
    assert stored["currency_code"] == payload["currency"]
    RESULTS[name] = row
    harness.take_dead_letters()


def test_shopifys_test_notification_is_recorded_not_sent(harness, all_providers):
    tracking_id, _ = deliver(harness, "test-notification-discount.json")
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SKIPPED and outcome.error_code == "TEST_ORDER"
    assert "cancelled" in (outcome.error_message or "")  # Shopify's test notification is both
    harness.drain()
    for provider in ("bigcommerce", "lana", "threekit", "komerza"):
        assert provider_order(harness, provider, tracking_id) is None
    RESULTS["test-notification-discount.json"] = {"all": "SKIPPED TEST_ORDER (not sent)"}


def summarise(provider: str, held: dict[str, Any]) -> str:
    """What the sandbox holds: currency and total as that provider computed them."""
    order = held.get("order") or {}
    for currency_key, total_key in (
        ("currency_code", "total_inc_tax"),
        ("currency", "total_price"),
        ("currency", "total"),
        ("currency", "total_cents"),
    ):
        if total_key in order:
            return f"{order.get(currency_key)} {order[total_key]}"
    return json.dumps(order)[:120]


def test_zz_print_the_table():
    """`pytest tests/test_shopify_cases.py -s` prints what each provider received."""
    if not RESULTS:
        pytest.skip("run the whole file")
    # every case has a row, and each row names all four providers (or says none was sent to)
    assert set(RESULTS) == {*EXPECTED, "test-notification-discount.json"}
    assert all(
        set(row) in ({"bigcommerce", "lana", "komerza", "threekit"}, {"all"}) for row in RESULTS.values()
    )
    for name, row in sorted(RESULTS.items()):
        print(f"{name}: " + "; ".join(f"{p}: {v}" for p, v in sorted(row.items())))
