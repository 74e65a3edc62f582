"""One storefront order is one provider order, whichever way in it takes: a platform's webhook, its
order export (S3 file) and its order API (feed) all name an order by the platform's immutable
order id, under one effective shop (`orderbridge.identity.effective_shop`). And a change of a
source's shop, which would re-key the orders already taken, is warned about by
`orderbridge config validate FILE --local` and by the local run's reload.

Through the local system (moto's server, the provider sandbox, the local feed server)."""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import hmac
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orderbridge import clients
from orderbridge.identity import PER_DELIVERY, effective_shop, shop_changes
from orderbridge.imports.config import FeedSource, FieldMapping, S3Source
from orderbridge.imports.mapping import OrderBuilder, Row
from orderbridge.imports.summary import RunStatus
from orderbridge.intake.signatures import sign_shopify
from orderbridge.models.config import FormConfig, OrderbridgeConfig
from orderbridge.models.outcome import OutcomeStatus
from orderbridge_local.feed import FeedServer, SampleFeed
from orderbridge_ops import cli
from tests.factories import tracking_id_for
from tests.test_imports import service, take_messages

ROOT = Path(__file__).resolve().parents[1]


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _webhook_secret(name: str) -> tuple[str, str]:
    """A signing secret of this test's own (one per source: the configuration requires it)."""
    secret_id, secret = f"orderbridge/webhooks/{name}", f"whsec-{_uid()}"
    clients.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"secrets": [secret]})
    )
    return secret_id, secret


@pytest.fixture
def configure(harness):
    """Add webhook and import sources for one test; the original configuration comes back after."""

    def apply(*, webhooks: dict[str, Any] | None = None, imports: dict[str, Any] | None = None) -> None:
        config = harness.system.local_config()
        config["webhooks"].update(webhooks or {})
        config["imports"].update(imports or {})
        harness.system.upload_config(config)

    yield apply
    harness.system.upload_config()


# --- Shopify -----------------------------------------------------------------------------------------


def _shopify_order(order_id: int, number: int) -> dict[str, Any]:
    """A REST Admin API order object: what `orders/create` posts and `orders.json` lists."""
    address = {
        "first_name": "Ada",
        "last_name": "Example",
        "address1": "1 Main St",
        "city": "Springfield",
        "zip": "62701",
        "province_code": "IL",
        "country_code": "US",
    }
    return {
        "id": order_id,
        "name": f"#{number}",
        "email": "ada@example.com",
        "currency": "USD",
        "created_at": "2026-03-01T09:00:00+00:00",
        "updated_at": "2026-03-01T09:00:00Z",
        "financial_status": "paid",
        "cancelled_at": None,
        "test": False,
        "taxes_included": False,
        "subtotal_price": "42.50",
        "total_discounts": "0.00",
        "total_tax": "0.00",
        "total_price": "47.50",
        "shipping_lines": [{"title": "Standard", "price": "5.00"}],
        "total_shipping_price_set": {"shop_money": {"amount": "5.00", "currency_code": "USD"}},
        "customer": {"first_name": "Ada", "last_name": "Example"},
        "billing_address": address,
        "shipping_address": address,
        "line_items": [
            {"sku": "TEE-BLUE-M", "title": "Blue tee", "quantity": 2, "price": "15.00"},
            {"sku": "MUG-001", "title": "Mug", "quantity": 1, "price": "12.50"},
        ],
    }


EXPORT_HEADER = (
    "Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,"
    "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Billing Name,"
    "Billing Address1,Billing City,Billing Zip,Billing Country,Id"
)


def _shopify_export(order_id: int | None, number: int) -> str:
    """Shopify's order export of that order: a row per line item, order-level columns (the `Id`
    among them, last, as Shopify writes it) on the first row only; `order_id` None: no Id column."""
    first = (
        f"#{number},ada@example.com,paid,USD,42.50,5.00,0.00,47.50,,0.00,2026-03-01 09:00:00 +0000,"
        f"2,Blue tee,15.00,TEE-BLUE-M,Ada Example,1 Main St,Springfield,62701,US,{order_id}"
    )
    second = f"#{number},ada@example.com,,,,,,,,,,1,Mug,12.50,MUG-001,,,,,,"
    lines = [EXPORT_HEADER, first, second]
    if order_id is None:
        lines = [line.rsplit(",", 1)[0] for line in lines]
    return "\n".join(lines) + "\n"


def _post_shopify(harness, source: str, secret: str, order: dict[str, Any]) -> str:
    body = json.dumps(order).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, secret),
    }
    r = harness.post(f"/webhooks/{source}", body, headers)
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED, (outcome.error_code, outcome.error_message)
    return tracking_id


def test_shopify_webhook_then_the_export_with_an_id_column_is_one_order(harness, configure):
    uid = _uid()
    shop, hook, export = f"shop-{uid}", f"shopify-hook-{uid}", f"shopify-export-{uid}"
    secret_id, secret = _webhook_secret(hook)
    configure(
        webhooks={hook: {"scheme": "shopify", "route": "default", "secret_id": secret_id, "shop": shop}},
        imports={
            export: {
                "kind": "s3",
                "route": "default",
                "shop": shop,
                "prefix": f"tests/{export}/",
                "mapping": {"preset": "shopify-orders-export"},
            }
        },
    )
    order_id, number = 5550000000 + int(uid[:6], 16), 1501
    tracking_id = _post_shopify(harness, hook, secret, _shopify_order(order_id, number))
    assert tracking_id == tracking_id_for(hook, str(order_id), shop=shop)

    clients.client("s3").put_object(
        Bucket=harness.system.import_bucket,
        Key=f"tests/{export}/orders_export.csv",
        Body=_shopify_export(order_id, number).encode(),
    )
    run = service().run_source(export)
    assert run.status is RunStatus.COMPLETED, (run.message, [r.describe() for r in run.rejections])
    # both rows are the one order, and it is already known: skipped, nothing queued
    assert (run.rows_read, run.orders_imported, run.orders_skipped, run.rows_rejected) == (2, 0, 1, 0)
    assert take_messages(harness, export) == []
    harness.drain()
    assert len(harness.orders_with_reference(tracking_id)) == 1


def test_shopify_webhook_then_the_shopify_feed_is_one_order(harness, configure):
    uid = _uid()
    shop, hook, feed = f"shop-{uid}", f"shopify-hook-{uid}", f"shopify-api-{uid}"
    secret_id, secret = _webhook_secret(hook)
    server = FeedServer(SampleFeed([], token=f"tok-{uid}", shape="shopify")).start()
    try:
        feed_secret = f"orderbridge/imports/{feed}"
        clients.client("secretsmanager").create_secret(
            Name=feed_secret, SecretString=json.dumps({"token": server.feed.token})
        )
        configure(
            webhooks={hook: {"scheme": "shopify", "route": "default", "secret_id": secret_id, "shop": shop}},
            imports={
                feed: {
                    "kind": "feed",
                    "route": "default",
                    "shop": shop,
                    "url": f"{server.url}/admin/api/2024-01/orders.json",
                    "secret_id": feed_secret,
                    "auth": {"type": "header", "header": "X-Shopify-Access-Token", "key": "token"},
                    "paging": {"preset": "shopify-orders-api"},
                    "mapping": {"preset": "shopify-orders-api"},
                }
            },
        )
        order = _shopify_order(6660000000 + int(uid[:6], 16), 2001)
        tracking_id = _post_shopify(harness, hook, secret, order)
        server.feed.orders.append(copy.deepcopy(order))
        run = service().run_source(feed)
        assert run.status is RunStatus.COMPLETED, (run.message, [r.describe() for r in run.rejections])
        assert (run.orders_imported, run.orders_skipped, run.rows_rejected) == (0, 1, 0)
        assert take_messages(harness, feed) == []
        assert len(harness.orders_with_reference(tracking_id)) == 1
    finally:
        server.shutdown()


def test_the_shopify_export_names_an_order_by_its_id_and_keeps_the_name():
    """`Id` on the first row only (as Shopify writes it) is the order's id; `Name` groups the rows and
    stays as the webhook's `shopify_name`. A file without `Id` falls back to `Name`."""
    mapping = FieldMapping.model_validate({"preset": "shopify-orders-export"})
    builder = OrderBuilder(mapping)

    def rows(text: str) -> list[Row]:
        header, *records = list(csv.reader(io.StringIO(text)))
        values = [dict(zip(header, r, strict=True)) for r in records]
        return [Row(line=i + 2, values=v, order_id=builder.order_id(v)) for i, v in enumerate(values)]

    with_id = rows(_shopify_export(5550001501, 1501))
    assert {r.order_id for r in with_id} == {"#1501"}  # one group, though Id is on one row
    order = builder.build(with_id).order
    assert order is not None
    assert (order.external_order_id, order.metadata["shopify_name"]) == ("5550001501", "#1501")

    without = builder.build(rows(_shopify_export(None, 1501))).order
    assert without is not None and without.external_order_id == "#1501"

    clash = [*with_id[:1], Row(line=3, values=with_id[1].values | {"Id": "5550009999"}, order_id="#1501")]
    [_, second] = builder.build(clash).rejections
    assert [(e.field, e.code) for e in second.errors] == [("Id", "conflicting_value")]


# --- WooCommerce -------------------------------------------------------------------------------------


WOO_ORDER = {
    "id": 4242,
    "number": "10042",  # a sequential-order-number plugin: not the id
    "status": "processing",
    "currency": "USD",
    "prices_include_tax": False,
    "date_created_gmt": "2026-03-01T09:00:00",
    "discount_total": "0.00",
    "shipping_total": "5.00",
    "shipping_tax": "0.00",
    "total_tax": "0.00",
    "total": "30.00",
    "billing": {
        "first_name": "Lia",
        "last_name": "Esempio",
        "address_1": "1 Main St",
        "city": "Springfield",
        "postcode": "62701",
        "country": "US",
        "email": "lia@example.com",
    },
    "shipping_lines": [{"method_title": "Flat rate", "total": "5.00"}],
    "line_items": [
        {
            "name": "Mug",
            "sku": "MUG-001",
            "quantity": 2,
            "subtotal": "25.00",
            "subtotal_tax": "0.00",
            "total": "25.00",
            "total_tax": "0.00",
        }
    ],
}
WOO_EXPORT = (
    "order_id,order_number,order_date,status,shipping_total,shipping_tax_total,tax_total,discount_total,"
    "order_total,order_currency,billing_email,billing_first_name,billing_last_name,billing_address_1,"
    "billing_city,billing_postcode,billing_country,line_item_1\n"
    "4242,10042,2026-03-01 09:00:00,processing,5.00,0.00,0.00,0.00,30.00,USD,lia@example.com,Lia,Esempio,"
    "1 Main St,Springfield,62701,US,"
    "name:Mug|product_id:93|sku:MUG-001|quantity:2|total:25.00|sub_total:25.00\n"
)


def test_woocommerce_webhook_then_the_export_row_is_one_order(harness, configure):
    uid = _uid()
    shop, hook, export = f"woo-{uid}", f"woo-hook-{uid}", f"woo-export-{uid}"
    secret_id, secret = _webhook_secret(hook)
    configure(
        webhooks={hook: {"scheme": "woocommerce", "route": "default", "secret_id": secret_id, "shop": shop}},
        imports={
            export: {
                "kind": "s3",
                "route": "default",
                "shop": shop,
                "prefix": f"tests/{export}/",
                "mapping": {"preset": "woocommerce-orders"},
            }
        },
    )
    body = json.dumps(WOO_ORDER).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": f"https://{uid}.shop.example/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Signature": signature,
        "X-WC-Webhook-Delivery-ID": uid,
    }
    r = harness.post(f"/webhooks/{hook}", body, headers)
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED, (outcome.error_code, outcome.error_message)
    assert tracking_id == tracking_id_for(hook, "4242", shop=shop)

    clients.client("s3").put_object(
        Bucket=harness.system.import_bucket, Key=f"tests/{export}/orders.csv", Body=WOO_EXPORT.encode()
    )
    run = service().run_source(export)
    assert run.status is RunStatus.COMPLETED, (run.message, [r.describe() for r in run.rejections])
    assert (run.orders_imported, run.orders_skipped, run.rows_rejected) == (0, 1, 0)
    assert take_messages(harness, export) == []
    harness.drain()
    assert len(harness.orders_with_reference(tracking_id)) == 1


def test_the_woocommerce_ways_in_keep_the_order_number_as_the_webhook_does():
    from orderbridge.sources.woocommerce import from_woocommerce

    webhook = from_woocommerce(WOO_ORDER)
    mapping = FieldMapping.model_validate({"preset": "woocommerce-orders"})
    header, record = list(csv.reader(io.StringIO(WOO_EXPORT)))
    values = dict(zip(header, record, strict=True))
    exported = OrderBuilder(mapping).build([Row(line=2, values=values, order_id="4242")]).order
    fed = OrderBuilder(FieldMapping.model_validate({"preset": "woocommerce-orders-api"})).build(
        [Row(line=1, values=WOO_ORDER | {"number": "10042"}, order_id="4242")]
    )
    assert fed.order is not None and exported is not None
    for order in (exported.model_dump(mode="json"), fed.order.model_dump(mode="json")):
        assert order["external_order_id"] == webhook["external_order_id"] == "4242"
        assert order["metadata"]["woocommerce_number"] == webhook["metadata"]["woocommerce_number"] == "10042"


# --- the effective shop, and warnings when it changes ------------------------------------------------


def test_the_effective_shop_rule():
    config = OrderbridgeConfig.model_validate(_local_document())
    hooks, imports = config.webhooks, config.imports
    assert effective_shop(hooks["woocommerce-demo"], "woocommerce-demo") == "woo-demo"  # its shop
    assert effective_shop(hooks["bigcommerce-demo"], "bigcommerce-demo") == "demo123"  # store_hash
    assert effective_shop(hooks["shopify-demo"], "shopify-demo") == "shopify-demo"  # its name
    woo = hooks["woocommerce-demo"].model_copy(update={"shop": None})
    assert effective_shop(woo, "w") is None  # depends on each delivery
    assert effective_shop(woo, "w", headers={"X-WC-Webhook-Source": "https://Shop.Example.com/"}) == (
        "shop.example.com"
    )
    assert effective_shop(woo, "w", headers={}) == "w"
    assert effective_shop(imports["erp-files"], "erp-files") == "erp-files"
    assert isinstance(imports["erp-files"], S3Source) and isinstance(imports["demo-feed"], FeedSource)
    form = FormConfig(route="default", source="storefront")
    assert effective_shop(form, "fk_demo0001") == "storefront"

    changed = copy.deepcopy(_local_document())
    changed["webhooks"]["woocommerce-demo"].pop("shop")
    changed["webhooks"]["bigcommerce-demo"]["shop"] = "demo123"  # the same shop, written out
    changed["imports"]["erp-files"]["shop"] = "erp"
    changed["webhooks"]["new-hook"] = changed["webhooks"]["shopify-demo"] | {
        "shop": "x",
        "secret_id": "orderbridge/webhooks/new-hook",
    }
    after = OrderbridgeConfig.model_validate(changed)
    found = {(c.where, c.before, c.after) for c in shop_changes(config, after)}
    assert found == {
        ("webhook source 'woocommerce-demo'", "woo-demo", None),
        ("import source 'erp-files'", "erp-files", "erp"),
    }
    [woo_change] = [c for c in shop_changes(config, after) if c.before == "woo-demo"]
    assert PER_DELIVERY in woo_change.message() and "SHOP_CHANGED" in woo_change.message()


def _local_document() -> dict[str, Any]:
    document = json.loads((ROOT / "config" / "local.json").read_text())
    document.pop("local", None)
    return json.loads(json.dumps(document).replace("${SANDBOX_URL}", "http://127.0.0.1:1"))


def _changed_store_file(tmp_path: Path) -> Path:
    """The local run's store setup with the WooCommerce source's shop changed."""
    setup = json.loads((ROOT / "config" / "local.json").read_text())
    setup["webhooks"]["woocommerce-demo"]["shop"] = "woo-renamed"
    path = tmp_path / "store.json"
    path.write_text(json.dumps(setup))
    return path


WARNING = (
    "webhook source 'woocommerce-demo': its shop changes from 'woo-demo' to 'woo-renamed'; "
    "orders already taken through it would no longer be recognised as duplicates"
)


def test_config_validate_file_warns_when_it_changes_a_sources_shop(
    harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """`orderbridge config validate FILE --local` compares FILE with the document uploaded to the
    local run's config bucket (on moto's server)."""
    state = harness.system.state()
    (tmp_path / ".orderbridge-local.json").write_text(json.dumps(state))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")  # one warning, one line
    same = tmp_path / "same.json"
    same.write_text((ROOT / "config" / "local.json").read_text())
    capsys.readouterr()
    assert cli.main(["config", "validate", str(same), "--local"]) == 0
    assert "warning" not in capsys.readouterr().err

    assert cli.main(["config", "validate", str(_changed_store_file(tmp_path)), "--local"]) == 0
    out, err = capsys.readouterr()
    assert "valid" in out
    [line] = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert WARNING in line and line.endswith("(SHOP_CHANGED)")


def test_reload_warns_when_the_edit_changes_a_sources_shop(harness, tmp_path: Path):
    """The local run's reload (the watcher's, SIGHUP's and `orderbridge-local reload`'s) applies the
    edit and prints the same warning; its result file carries it for `orderbridge-local reload`."""
    from orderbridge_local.cli import ReloadResultPrinter
    from orderbridge_local.reload import ConfigWatcher

    system = harness.system
    original = system.config_path
    printed = io.StringIO()
    result_file = tmp_path / "reload.json"
    watcher = ConfigWatcher(
        system, ReloadResultPrinter(Console(file=printed, width=400)), result_file=result_file
    )
    try:
        system.config_path = _changed_store_file(tmp_path)
        result = watcher.reload_now()
        assert result.ok, result.problems
        [warning] = result.warnings
        assert WARNING in warning
        assert WARNING in printed.getvalue()
        assert WARNING in json.loads(result_file.read_text())["summary"]
        system.config_path = original
        back = watcher.reload_now()  # and back: that is a change too
        assert [w for w in back.warnings if "from 'woo-renamed' to 'woo-demo'" in w]
    finally:
        system.config_path = original
        system.reload()
