"""Feeds with real paging against local servers shaped like Shopify's and WooCommerce's order APIs.

Shopify: `Link: <...page_info=...>; rel="next"`, `updated_at_min` inclusive, nothing beside
`page_info` on later pages. WooCommerce: a bare array, `page`/`per_page`, `X-WP-TotalPages`,
`modified_after` exclusive, newest first by default. Every scenario has many orders sharing one
update time across page boundaries, and runs cut off after every page: every order must be
imported exactly once, and a feed that cannot move on must end FAILED, never COMPLETED.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections import Counter
from typing import Any

import pytest

from orderbridge import clients, wiring
from orderbridge.imports.service import ImportService
from orderbridge.imports.summary import RunStatus
from orderbridge_local.feed import FeedServer, SampleFeed
from tests.test_imports import FakeContext, feed_order, take_messages

SAME = "2026-03-01T08:00:00Z"


def _uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def configure(harness):
    def apply(**sources: dict[str, Any]) -> None:
        config = harness.system.local_config()
        config["imports"].update(sources)
        harness.system.upload_config(config)

    yield apply
    harness.system.upload_config()


@pytest.fixture
def servers():
    started: list[FeedServer] = []

    def start(shape: str, **kwargs: Any) -> FeedServer:
        server = FeedServer(SampleFeed([], token=f"tok-{_uid()}", shape=shape, **kwargs)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()


def _source(harness, server: FeedServer, name: str, url: str, paging: dict[str, Any], auth=None) -> dict:
    secret_id = f"orderbridge/imports/{name}"
    clients.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"token": server.feed.token})
    )
    source = copy.deepcopy(harness.system.local_config()["imports"]["demo-feed"])
    source |= {"url": url, "secret_id": secret_id, "paging": paging}
    if auth:
        source["auth"] = auth
    return source


def _woo_order(number: int, modified: str) -> dict[str, Any]:
    order = feed_order(str(number), modified)
    order["id"] = number
    order["date_modified_gmt"] = modified.removesuffix("Z")
    order["date_created_gmt"] = order["date_modified_gmt"]
    return order


def _page_by_page(svc: ImportService, name: str, limit: int = 50) -> list[Any]:
    """Runs, each cut off after its first page, until one completes (or fails)."""
    runs = []
    for _ in range(limit):
        context = FakeContext(checks=10_000)

        def cut(event: Any, context: FakeContext = context) -> None:
            context.left = 0

        run = svc.run_source(name, deadline=svc.deadline(context.get_remaining_time_in_millis), progress=cut)
        runs.append(run)
        assert run.balanced()
        if run.status is not RunStatus.PARTIAL:
            return runs
    raise AssertionError("the feed never completed")


def _imported_once(harness, name: str, expected: set[str]) -> None:
    events = take_messages(harness, name, expect=len(expected))
    seen = Counter(str(e["order"]["external_order_id"]) for e in events)
    assert set(seen) == expected
    assert all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n > 1]


def test_shopify_link_paging_with_one_update_time_across_pages(harness, configure, servers):
    server = servers("shopify")
    name = f"shop-{_uid()}"
    paging = {
        "style": "link",
        "items": "orders",
        "since_param": "updated_at_min",
        "updated_at": "updated_at",
        "page_size_param": "limit",
        "page_size": 3,
        "params": {"status": "any", "order": "updated_at asc"},
    }
    auth = {"type": "header", "header": "X-Shopify-Access-Token", "key": "token"}
    url = f"{server.url}/admin/api/2024-01/orders.json"
    configure(**{name: _source(harness, server, name, url, paging, auth)})
    # a bulk edit: eight orders at one time, around two earlier ones and one later
    orders = [feed_order(f"S{name}-{i}", SAME) for i in range(8)]
    orders += [feed_order(f"S{name}-early-{i}", f"2026-03-01T07:0{i}:00Z") for i in range(2)]
    orders.append(feed_order(f"S{name}-late", "2026-03-01T09:00:00Z"))
    server.feed.orders += orders
    svc = wiring.import_service()

    runs = _page_by_page(svc, name)
    assert runs[-1].status is RunStatus.COMPLETED
    assert sum(r.orders_imported for r in runs) == 11
    later = [r["args"] for r in server.feed.requests if "page_info" in r["args"]]
    assert later and all(set(a) <= {"page_info", "limit"} for a in later)  # the link, as given
    _imported_once(harness, name, {o["id"] for o in orders})

    # more orders at the watermark's time and after it: only those, once
    more = [feed_order(f"S{name}-more-{i}", "2026-03-01T09:00:00Z") for i in range(4)]
    server.feed.orders += more
    runs = _page_by_page(svc, name)
    assert runs[-1].status is RunStatus.COMPLETED
    assert sum(r.orders_imported for r in runs) == 4
    _imported_once(harness, name, {o["id"] for o in more})


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_woocommerce_page_numbers_newest_and_oldest_first(harness, configure, servers, order):
    server = servers("woocommerce", time_field="date_modified_gmt")
    name = f"woo-{order}-{_uid()}"
    paging = {
        "style": "page" if order == "desc" else "since",
        "sort": order,
        "items": "",
        "page_param": "page",
        "total_pages_header": "X-WP-TotalPages",
        "since_param": "modified_after",
        "since_exclusive": True,
        "updated_at": "date_modified_gmt",
        "page_size_param": "per_page",
        "page_size": 3,
        "params": {"orderby": "modified", "order": order, "dates_are_gmt": "true"},
    }
    configure(**{name: _source(harness, server, name, f"{server.url}/wp-json/wc/v3/orders", paging)})
    base = random.randint(10, 99) * 100_000
    orders = [_woo_order(base + i, SAME) for i in range(7)]
    orders += [_woo_order(base + 10 + i, f"2026-03-01T07:0{i}:00Z") for i in range(3)]
    orders.append(_woo_order(base + 20, "2026-03-01T08:00:01Z"))
    server.feed.orders += orders
    svc = wiring.import_service()

    # cut off after every page, with new orders arriving between the runs
    arrivals = [_woo_order(base + 30 + i, f"2026-03-01T08:30:0{i}Z") for i in range(3)]
    runs = []
    for k in range(40):
        context = FakeContext(checks=10_000)

        def cut(event: Any, context: FakeContext = context) -> None:
            context.left = 0

        run = svc.run_source(name, deadline=svc.deadline(context.get_remaining_time_in_millis), progress=cut)
        runs.append(run)
        assert run.balanced()
        if k < len(arrivals):
            server.feed.orders.append(arrivals[k])
        if run.status is not RunStatus.PARTIAL and k >= len(arrivals):
            break
    # orders that arrived during a pass come in the next one (newest first: they were ahead of it)
    runs += _page_by_page(svc, name)
    assert runs[-1].status is RunStatus.COMPLETED
    assert all(r.status in (RunStatus.PARTIAL, RunStatus.COMPLETED) for r in runs)
    everything = {str(o["id"]) for o in orders + arrivals}
    assert sum(r.orders_imported for r in runs) == len(everything)
    # modified_after is exclusive: the importer asks one second early so the boundary second counts
    asked = [r["args"].get("modified_after") for r in server.feed.requests if r["args"].get("modified_after")]
    assert asked and all(a.endswith("Z") for a in asked)
    _imported_once(harness, name, everything)

    # a later run from the watermark: nothing new, nothing sent
    again = svc.run_source(name)
    assert (again.status, again.orders_imported) == (RunStatus.COMPLETED, 0)


def test_a_feed_that_cannot_page_past_one_update_time_fails(harness, configure, servers):
    server = servers("woocommerce", time_field="date_modified_gmt")
    name = f"stuck-{_uid()}"
    paging = {
        "style": "since",
        "items": "",
        "since_param": "modified_after",
        "since_exclusive": True,
        "updated_at": "date_modified_gmt",
        "page_size_param": "per_page",
        "page_size": 3,
        "params": {"orderby": "modified", "order": "asc"},
    }
    configure(**{name: _source(harness, server, name, f"{server.url}/wp-json/wc/v3/orders", paging)})
    base = random.randint(10, 99) * 100_000
    server.feed.orders += [_woo_order(base + i, SAME) for i in range(5)]
    svc = wiring.import_service()
    run = svc.run_source(name)
    assert run.status is RunStatus.FAILED
    assert "cannot page past them" in (run.message or "")
    assert run.orders_imported == 3 and run.balanced()
    again = svc.run_source(name)  # never COMPLETED while orders are left unread
    assert again.status is RunStatus.FAILED and again.orders_skipped == 3
    take_messages(harness, name, expect=3)


def test_a_feed_that_ignores_the_page_number_fails(harness, configure, servers):
    server = servers("cursor")  # answers page 1 whatever page is asked for
    name = f"nopage-{_uid()}"
    paging = {
        "style": "page",
        "sort": "desc",
        "items": "orders",
        "page_param": "page",
        "since_param": "updated_since",
        "page_size_param": "limit",
        "page_size": 3,
    }
    configure(**{name: _source(harness, server, name, f"{server.url}/orders", paging)})
    server.feed.orders += [feed_order(f"N{name}-{i}", SAME) for i in range(5)]
    run = wiring.import_service().run_source(name)
    assert run.status is RunStatus.FAILED and "ignores 'page'" in (run.message or "")
    take_messages(harness, name, expect=3)


# --- presets for the platforms' order APIs ------------------------------------------------------------


def _shopify_json(number: int, updated: str, status: str = "paid") -> dict[str, Any]:
    address = {
        "first_name": "Ada",
        "last_name": "Example",
        "address1": "1 Example St",
        "city": "Springfield",
        "zip": "12345",
        "province_code": "IL",
        "country_code": "US",
    }
    return {
        "id": 450789000 + number,
        "name": f"#{number}",
        "email": None,
        "currency": "EUR",
        "created_at": "2026-03-01T07:00:00-05:00",
        "updated_at": updated,
        "financial_status": status,
        "cancelled_at": None,
        "test": False,
        "taxes_included": False,
        "total_discounts": "5.00",
        "discount_codes": [{"code": "SPRING", "amount": "5.00"}],
        "total_tax": "1.90",
        "total_price": "41.90",
        "total_shipping_price_set": {"shop_money": {"amount": "5.00", "currency_code": "EUR"}},
        "customer": {"first_name": "Ada", "last_name": "Example"},
        "billing_address": address,
        "line_items": [
            {"sku": "MUG-001", "title": "Mug", "variant_title": None, "quantity": 2, "price": "12.50"},
            {"sku": None, "title": "Gift wrap", "variant_title": "Red", "quantity": 1, "price": "15.00"},
        ],
    }


def _woo_json(number: int, modified: str, status: str = "processing") -> dict[str, Any]:
    billing = {
        "first_name": "Lia",
        "last_name": "Esempio",
        "address_1": "Via Esempio 1",
        "city": "Roma",
        "postcode": "00100",
        "country": "IT",
        "email": "lia@example.com",
    }
    return {
        "id": number,
        "number": str(number),
        "status": status,
        "currency": "EUR",
        "date_created_gmt": "2026-03-01T07:00:00",
        "date_modified_gmt": modified,
        "discount_total": "2.00",
        "shipping_total": "3.00",
        "total_tax": "0.00",
        "prices_include_tax": False,
        "total": "27.00",
        "billing": billing,
        "shipping": billing,
        "line_items": [
            {"name": "Rivista n. 120", "sku": "RIV-120", "quantity": 2, "subtotal": "26.00", "total": "24.00"}
        ],
    }


def test_shopify_and_woocommerce_api_presets(harness, configure, servers):
    shop, woo = servers("shopify"), servers("woocommerce", time_field="date_modified_gmt")
    shop_name, woo_name = f"shopapi-{_uid()}", f"wooapi-{_uid()}"
    shop_source = _source(
        harness,
        shop,
        shop_name,
        f"{shop.url}/admin/api/2024-01/orders.json",
        {"preset": "shopify-orders-api", "page_size": 2},
        {"type": "header", "header": "X-Shopify-Access-Token", "key": "token"},
    )
    shop_source["mapping"] = {"preset": "shopify-orders-api"}
    woo_source = _source(
        harness,
        woo,
        woo_name,
        f"{woo.url}/wp-json/wc/v3/orders",
        {"preset": "woocommerce-orders-api", "page_size": 2},
    )
    woo_source["mapping"] = {"preset": "woocommerce-orders-api"}
    configure(**{shop_name: shop_source, woo_name: woo_source})
    base = random.randint(10, 99) * 1000
    shop.feed.orders += [_shopify_json(base + i, SAME) for i in range(4)]
    shop.feed.orders.append(_shopify_json(base + 9, SAME, status="voided"))
    woo.feed.orders += [_woo_json(base + i, SAME.removesuffix("Z")) for i in range(4)]
    woo.feed.orders.append(_woo_json(base + 9, SAME.removesuffix("Z"), status="cancelled"))
    svc = wiring.import_service()
    for name, first in ((shop_name, "#"), (woo_name, "")):
        run = svc.run_source(name)
        assert (run.status, run.orders_imported, run.orders_filtered, run.rows_rejected) == (
            RunStatus.COMPLETED,
            4,
            1,
            0,
        ), [r.describe() for r in run.rejections]
        events = take_messages(harness, name, expect=4)
        # named by the platform's order id, as its webhook names it; the number kept as metadata
        ids = [str(450789000 + base + i) if first else str(base + i) for i in range(4)]
        assert sorted(e["order"]["external_order_id"] for e in events) == ids
        key = "shopify_name" if first else "woocommerce_number"
        assert sorted(e["order"]["metadata"][key] for e in events) == [f"{first}{base + i}" for i in range(4)]
        for event in events:
            order = event["order"]
            assert order["currency"] == "EUR"
            assert str(order["total"]) in ({"41.90"} if first else {"27.00"})
        again = svc.run_source(name)
        assert (again.status, again.orders_imported) == (RunStatus.COMPLETED, 0)


def test_a_page_past_the_end_starts_the_pass_again(harness, configure, servers):
    server = servers("woocommerce", time_field="date_modified_gmt")
    name = f"gone-{_uid()}"
    paging = {"preset": "woocommerce-orders-api", "style": "page", "sort": "desc", "page_size": 2}
    paging["params"] = {"order": "desc"}
    configure(**{name: _source(harness, server, name, f"{server.url}/wp-json/wc/v3/orders", paging)})
    base = random.randint(10, 99) * 100_000
    server.feed.orders += [_woo_order(base + i, f"2026-03-01T08:00:0{i}Z") for i in range(5)]
    svc = wiring.import_service()
    context = FakeContext(checks=10_000)
    first = svc.run_source(
        name,
        deadline=svc.deadline(context.get_remaining_time_in_millis),
        progress=lambda event: setattr(context, "left", 0),
    )
    assert (first.status, first.orders_imported) == (RunStatus.PARTIAL, 2)
    del server.feed.orders[:3]  # page 2 no longer exists: the stored page is refused
    second = svc.run_source(name)
    assert (second.status, second.orders_imported, second.orders_skipped) == (RunStatus.COMPLETED, 0, 2)
    assert len(take_messages(harness, name, expect=2)) == 2
