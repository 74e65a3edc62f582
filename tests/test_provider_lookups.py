"""Each adapter's lookup against its sandbox over HTTP, in the cases where the two could agree with
each other and both be wrong: they fail if the adapter and the sandbox drift apart, or if either
drifts from what the provider's own material says (the sources are cited where each rule is
enforced: providers/<name>.py and sandboxes/orderbridge_sandboxes/<name>.py).

* BigCommerce: `external_order_id` is filterable but neither unique nor immutable; an answer
  whose first order is someone else's is never taken, several matches are parked for review.
* Lana: the Idempotency-Key replay is short-lived and byte-exact; after a settings change between
  attempts (another body) the tag search still finds the first order, and nothing creates a second.
* Threekit: the lookup sends the create's own platform object (whole-object matching).
* Komerza: the lookup pages through the buyer's orders and reads each one's metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from orderbridge.dispatch.sender import Sender
from orderbridge.models.config import Destination
from orderbridge.providers import komerza as komerza_module
from orderbridge.providers.base import ProviderRequest, ProviderResult, ResultKind
from orderbridge.providers.bigcommerce import BigCommerceProvider
from orderbridge.providers.threekit import ThreekitProvider
from orderbridge_sandboxes import SandboxServer, serve
from tests import test_sandbox_bigcommerce as bc
from tests import test_sandbox_komerza as kz
from tests import test_sandbox_lana as ln
from tests import test_sandbox_threekit as tk
from tests.factories import delivery, order

PROVIDERS = ("bigcommerce", "komerza", "lana", "threekit")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SandboxServer]]:
    started = {
        "bigcommerce": serve(bc.CONFIG, port=0),
        "komerza": serve(kz.CONFIG, port=0, registry=kz.REGISTRY),
        "lana": serve(ln.CONFIG, port=0, registry=ln.REGISTRY),
        "threekit": serve(tk.CONFIG, port=0, registry=tk.REGISTRY),
    }
    yield started
    for srv in started.values():
        srv.shutdown()


@pytest.fixture(autouse=True)
def _clean(servers: dict[str, SandboxServer]) -> Iterator[None]:
    for srv in servers.values():
        requests.post(f"{srv.url}/_sandbox/reset", timeout=5).raise_for_status()
    yield


def _orders(srv: SandboxServer, provider: str) -> list[dict[str, Any]]:
    r = requests.get(f"{srv.url}/_sandbox/{provider}/orders", timeout=5)
    r.raise_for_status()
    return r.json()


def _fault(srv: SandboxServer, provider: str, **fault: Any) -> None:
    requests.post(f"{srv.url}/_sandbox/{provider}/faults", json=fault, timeout=5).raise_for_status()


def _send(req: ProviderRequest, auth: dict[str, str]) -> requests.Response | ProviderResult:
    return Sender(timeout=5).send(req, auth)


# --- BigCommerce ------------------------------------------------------------------------------------


def _bc(srv: SandboxServer) -> tuple[BigCommerceProvider, Any, dict[str, str]]:
    destination = Destination(
        provider="bigcommerce",
        secret_id="x",
        base_url=f"{srv.url}/bigcommerce",
        settings={"store_hash": bc.STORE},
    )
    d = dataclasses.replace(
        delivery(order(lines=[{"sku": "TEE-BLUE-M", "quantity": 1}])), destination=destination
    )
    provider = BigCommerceProvider(destination=destination)
    return provider, d, provider.auth_headers({"access_token": bc.TOKEN, "token": bc.TOKEN})


def _put_external_id(srv: SandboxServer, order_id: int, value: str) -> None:
    r = requests.put(
        f"{bc.orders_url(srv)}/{order_id}", json={"external_order_id": value}, headers=bc.AUTH, timeout=5
    )
    assert r.status_code == 200, r.text


def test_bigcommerce_answer_with_an_unrelated_order_first_is_not_taken(servers):
    srv = servers["bigcommerce"]
    provider, d, auth = _bc(srv)
    unrelated = bc.post(srv, bc.catalog_order("someone-else")).json()
    created = provider.parse_create(_send(provider.build_create(d), auth))
    assert created.kind is ResultKind.SUCCEEDED, created
    lookup = provider.build_lookup(d)
    found = provider.parse_lookup(_send(lookup, auth))
    assert found.kind is ResultKind.SUCCEEDED and found.provider_order_id == created.provider_order_id
    # a server answering every order (the unrelated one first), read as the answer to our lookup
    everything = requests.get(bc.orders_url(srv), headers=bc.AUTH, timeout=5)
    assert everything.json()[0]["id"] == unrelated["id"]
    everything.request = requests.Request(lookup.method, lookup.url, params=lookup.params).prepare()
    picked = provider.parse_lookup(everything)
    assert picked.kind is ResultKind.SUCCEEDED and picked.provider_order_id == created.provider_order_id


def test_bigcommerce_reference_is_neither_unique_nor_immutable(servers):
    srv = servers["bigcommerce"]
    provider, d, auth = _bc(srv)
    created = provider.parse_create(_send(provider.build_create(d), auth))
    other = bc.post(srv, bc.catalog_order("someone-else")).json()
    # another app writes our reference onto its order: two matches, a person decides
    _put_external_id(srv, other["id"], d.tracking_id)
    twice = provider.parse_lookup(_send(provider.build_lookup(d), auth))
    assert twice.kind is ResultKind.REVIEW and twice.error_code == "DUPLICATE_REFERENCE"
    assert str(other["id"]) in twice.error_message and str(created.provider_order_id) in twice.error_message
    # and the match is exact: a longer value carrying ours is not ours
    _put_external_id(srv, other["id"], f"{d.tracking_id}-copy")
    once = provider.parse_lookup(_send(provider.build_lookup(d), auth))
    assert once.kind is ResultKind.SUCCEEDED and once.provider_order_id == created.provider_order_id
    assert len(_orders(srv, "bigcommerce")) == 2


# --- Lana ---------------------------------------------------------------------------------------------


def test_lana_settings_change_between_attempts_still_finds_the_first_order(servers):
    """The create's body changes between attempts (another gateway in the settings): a replay would
    be refused as a reused key or, after the window, make a second order; the tag search finds it."""
    srv = servers["lana"]
    provider, d = ln._adapter_delivery(srv)
    auth = provider.auth_headers({"token": ln.TOKEN})
    _fault(srv, "lana", mode="drop_after_create")
    assert isinstance(_send(provider.build_create(d), auth), ProviderResult)
    settings = {k: v for k, v in provider.destination.settings.items() if k != "gateway_id"}
    changed = dataclasses.replace(
        d, destination=provider.destination.model_copy(update={"settings": settings})
    )
    later = type(provider)(destination=changed.destination)
    assert later.build_create(changed).json != provider.build_create(d).json
    found = later.parse_lookup(_send(later.build_lookup(changed), auth))
    assert found.kind is ResultKind.SUCCEEDED
    [kept] = _orders(srv, "lana")
    assert found.provider_order_id == kept["order"]["id"]
    # had the changed create been sent, Lana refuses the reused key: parked, never a failure
    refused = later.parse_create(_send(later.build_create(changed), auth))
    assert refused.kind is ResultKind.REVIEW and refused.error_code == "KEY_REUSED"
    assert len(_orders(srv, "lana")) == 1


# --- Threekit -----------------------------------------------------------------------------------------


def test_threekit_full_platform_object_finds_it_and_a_partial_one_would_not(servers):
    srv = servers["threekit"]
    d = tk._delivery(srv)
    provider = ThreekitProvider(destination=d.destination)
    auth = provider.auth_headers({"token": tk.TOKEN})
    _fault(srv, "threekit", mode="drop_after_create")
    assert isinstance(_send(provider.build_create(d), auth), ProviderResult)
    lookup = provider.build_lookup(d)
    found = provider.parse_lookup(_send(lookup, auth))
    assert found.kind is ResultKind.SUCCEEDED
    [kept] = _orders(srv, "threekit")
    assert found.provider_order_id == kept["order"]["id"]
    assert json.loads(lookup.params["platform"]) == kept["request"]["platform"]
    partial = dataclasses.replace(
        lookup, params={**lookup.params, "platform": json.dumps({"id": d.tracking_id})}
    )
    assert provider.parse_lookup(_send(partial, auth)).kind is ResultKind.NOT_FOUND


# --- Komerza ------------------------------------------------------------------------------------------


def test_komerza_lookup_pages_to_an_older_order_of_the_same_buyer(servers, monkeypatch):
    srv = servers["komerza"]
    provider = kz.adapter_for(srv)
    auth = provider.auth_headers({"api_key": kz.TOKEN})
    d = kz.adapter_delivery(provider)
    _fault(srv, "komerza", mode="drop_after_create")
    assert isinstance(_send(provider.build_create(d), auth), ProviderResult)
    for _ in range(3):  # newer orders of the same buyer come first in the list
        newer = kz.adapter_delivery(provider)
        assert provider.parse_create(_send(provider.build_create(newer), auth)).kind is ResultKind.SUCCEEDED
    monkeypatch.setattr(komerza_module, "LOOKUP_PAGE_SIZE", 1)  # four pages of one order
    lookup = provider.build_lookup(d)
    assert lookup.params["PageSize"] == "1"
    found = provider.parse_lookup(_send(lookup, auth))
    assert found.kind is ResultKind.SUCCEEDED, found
    ours = [o for o in _orders(srv, "komerza") if o["order"]["metadata"][kz.REFERENCE_KEY] == d.tracking_id]
    assert [o["order"]["id"] for o in ours] == [found.provider_order_id]
    assert len(_orders(srv, "komerza")) == 4
