"""Canonical orders, deliveries, queue events, form posts and operator CLI options for tests."""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

from orderbridge.identity import OrderIdentity
from orderbridge.models.config import Destination
from orderbridge.models.order import CanonicalOrder
from orderbridge.providers.base import Delivery

ORDER: dict[str, Any] = {
    "external_order_id": "SHOP-1001",
    "currency": "USD",
    "buyer": {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "ip_address": "203.0.113.9",
    },
    "billing_address": {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address1": "12 Analytical Row",
        "city": "London",
        "zip": "N1 9GU",
        "country": "GB",
    },
    "lines": [
        {"sku": "TEE-BLUE-M", "quantity": 2},
        {"name": "Engraving", "quantity": 1, "unit_price": "7.50"},
    ],
    "notes": "Leave at the door",
    "shipping_total": "4.95",
}

CATALOG = {"TEE-BLUE-M": {"product_id": 111, "variant_id": 77}, "MUG-001": {"product_id": 112}}


#: The project's shared cases (real payloads and exports), laid beside the checkout: CI lays
#: `shared/` there; a developer's clone may not have it.
SHARED_CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"
SHOPIFY_CASES = (
    "order-usd-tax.json",
    "order-hk-null-zip.json",
    "order-phone-only-buyer.json",
    "test-notification-discount.json",
)


def shared_case(*parts: str) -> Path:
    """A file of the shared cases. Missing: the test is skipped with the reason, except under CI
    (`CI` set), where the cases must be there and a missing one fails the test."""
    import pytest

    path = SHARED_CASES.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing: the shared cases lie beside the checkout (CI lays them there)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def new_tracking_id() -> str:
    """A tracking id of the right shape for a made-up delivery (real ones are derived)."""
    return f"ob_{uuid.uuid4().hex}"


def tracking_id_for(source: str, external_order_id: str, *, shop: str | None = None) -> str:
    """The id the running system derives for a shop's order (needs the local run's environment)."""
    from orderbridge import wiring

    ids = wiring.tracking_ids(wiring.credential_store())
    return ids.tracking_id(
        OrderIdentity.of(shop=shop or source, source=source, external_order_id=external_order_id)
    )


def order(**changes: Any) -> CanonicalOrder:
    data = copy.deepcopy(ORDER)
    data.update(changes)
    return CanonicalOrder.model_validate(data)


def delivery(
    order_: CanonicalOrder | None = None,
    *,
    provider: str = "bigcommerce",
    settings: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> Delivery:
    return Delivery(
        tracking_id=new_tracking_id(),
        destination_id="bc-test",
        destination=Destination(
            provider=provider,
            secret_id="orderbridge/providers/test",
            base_url="http://sandbox.invalid/bigcommerce",
            settings=settings if settings is not None else {"store_hash": "abc123"},
        ),
        order=order_ or order(),
        source="test",
        catalog=CATALOG if catalog is None else catalog,
    )


#: The canonical order another system (an ERP) puts on the order queue.
ERP_ORDER: dict[str, Any] = {
    "buyer": {"email": "alan@example.com"},
    "billing_address": {
        "first_name": "Alan",
        "last_name": "Turing",
        "address1": "Bletchley Park",
        "city": "Milton Keynes",
        "zip": "MK3 6EB",
        "country": "GB",
    },
    "lines": [{"sku": "MUG-001", "quantity": 1}],
}


def erp_event(*, route: str = "default", **order_changes: Any) -> tuple[str, str]:
    """A new canonical order event from source `erp` as a queue body: (body, external order id)."""
    ext = f"ERP-{uuid.uuid4().hex[:12]}"
    order_ = {"external_order_id": ext, **copy.deepcopy(ERP_ORDER)} | order_changes
    return json.dumps({"source": "erp", "route": route, "order": order_}), ext


def queue_event(*, route: str = "default", **order_changes: Any) -> tuple[str, str]:
    """`erp_event` with the tracking id the running system derives for it: (body, tracking id)."""
    body, ext = erp_event(route=route, **order_changes)
    return body, tracking_id_for("erp", ext)


#: A buyer's post to a storefront form (the demo's US address, one demo SKU).
FORM_POST: dict[str, Any] = {
    "email": "grace@example.com",
    "first_name": "Grace",
    "last_name": "Hopper",
    "address": {
        "address1": "1 Navy Yard",
        "city": "Arlington",
        "province": "VA",
        "zip": "22202",
        "country": "US",
    },
    "items": [{"sku": "TEE-BLUE-M", "quantity": 1}],
}


def form_post(**changes: Any) -> dict[str, Any]:
    """`FORM_POST` with a fresh `submission_id` (a new order) and `changes` on top."""
    return {"submission_id": uuid.uuid4().hex, **copy.deepcopy(FORM_POST)} | changes


def ops_options(state: dict[str, str], **override: str) -> list[str]:
    """The operator CLI's connection options for the local run's `state()` (`--table`, ...);
    `override` replaces one by its option name (`dlq_url="..."`)."""
    values = {
        "endpoint-url": state["endpoint_url"],
        "region": state["region"],
        "table": state["outcome_table"],
        "queue-url": state["order_queue_url"],
        "dlq-url": state["dead_letter_queue_url"],
    } | {k.replace("_", "-"): v for k, v in override.items()}
    return [item for name, value in values.items() for item in (f"--{name}", value)]
