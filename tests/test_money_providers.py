"""Money through Komerza, Lana and Threekit: the provider receives the order the buyer placed, or the
delivery fails with a code that says why.

(a) Every real Shopify case in ../shared/cases/shopify/ (beside the checkout; skipped
    when absent, failed under CI) goes through each adapter and its sandbox over HTTP: Lana's and Komerza's
    total equals the source's `total_price` to the minor unit, in its currency; Threekit's order
    metadata carries the source's total and currency; or the adapter refuses with a precise code.
(b) Hypothesis: generated orders in JPY, USD and KWD (line and order discounts, tax inclusive and
    exclusive, shipping) through each adapter and its sandbox's own rules (in process, fast,
    derandomized): the provider's total is the buyer's amount due, or a refusal with a known code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderbridge.dispatch.sender import Sender
from orderbridge.exceptions import RequestRejectedError
from orderbridge.models import money
from orderbridge.models.config import Destination
from orderbridge.models.order import CanonicalOrder
from orderbridge.providers.base import Delivery, Provider, ResultKind
from orderbridge.providers.komerza import KomerzaProvider
from orderbridge.providers.lana import LanaProvider
from orderbridge.providers.threekit import ThreekitProvider
from orderbridge_sandboxes import SandboxConfig, SandboxServer, serve
from orderbridge_sandboxes import komerza as kz_sandbox
from orderbridge_sandboxes import lana as ln_sandbox
from orderbridge_sandboxes import threekit as tk_sandbox
from tests.factories import SHOPIFY_CASES, new_tracking_id, shared_case

CASE_FILES = SHOPIFY_CASES

# --- accounts: one sandbox server with the three providers --------------------------------------

LANA_SHOP = "sh_MoneyShop"
LANA_TOKEN = (
    "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAidXNfTW9uZXkifQ.bW9uZXktc2FuZGJveC1zaWduYXR1cmU"
)
LANA_EUR_SHOP = "sh_EuroShop"
KZ_TOKEN = "money-komerza-key"
KZ_STORES = {  # one Komerza store per currency: the create names none, the store's applies
    "USD": "1b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e51",
    "JPY": "2b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e52",
    "KWD": "3b7d6c1e-4c1a-4f2e-9d3a-5a1b2c3d4e53",
}
TK_ORG = "7f0e2a9c-8d1b-4c7e-a3f6-2b9d8e7c6a57"
TK_TOKEN = "money-threekit-token"
SKUS = ("IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK", "IPOD2008PINK", "TEE-BLUE-M")


def _uuid(n: int, prefix: str) -> str:
    return f"{prefix}{n:04d}-0000-4000-8000-{n:012d}"


CATALOGS = {
    "lana": {sku: {"variant_id": f"va_Ipod{i}"} for i, sku in enumerate(SKUS)},
    "komerza": {
        sku: {"productId": _uuid(i, "aaaa"), "variantId": _uuid(i, "bbbb")} for i, sku in enumerate(SKUS)
    },
    "threekit": {sku: {"configurationId": _uuid(i, "cccc")} for i, sku in enumerate(SKUS)},
}

CONFIG = SandboxConfig.model_validate(
    {
        "lana": {
            "accounts": {
                LANA_SHOP: {"token": LANA_TOKEN, "currencies": ["USD", "JPY", "KWD"]},
                LANA_EUR_SHOP: {"token": LANA_TOKEN, "currency": "EUR", "currencies": ["EUR"]},
            }
        },
        "komerza": {
            "accounts": {
                store: {"token": KZ_TOKEN, "currency_code": currency, "gateways": ["stripe"]}
                for currency, store in KZ_STORES.items()
            }
        },
        "threekit": {"accounts": {TK_ORG: {"token": TK_TOKEN}}},
    }
)
REGISTRY = {
    "lana": "orderbridge_sandboxes.lana:LanaSandbox",
    "komerza": "orderbridge_sandboxes.komerza:KomerzaSandbox",
    "threekit": "orderbridge_sandboxes.threekit:ThreekitSandbox",
}
CREDENTIALS = {
    "lana": {"token": LANA_TOKEN},
    "komerza": {"api_key": KZ_TOKEN},
    "threekit": {"token": TK_TOKEN},
}
PROVIDERS: dict[str, type[Provider]] = {
    "lana": LanaProvider,
    "komerza": KomerzaProvider,
    "threekit": ThreekitProvider,
}


def _settings(provider: str, currency: str = "USD") -> dict[str, Any]:
    if provider == "lana":
        return {"shop_id": LANA_SHOP}
    if provider == "komerza":
        return {"store_id": KZ_STORES[currency], "gateway": "stripe", "currency": currency}
    return {"org_id": TK_ORG}


def _delivery(
    provider: str,
    order: CanonicalOrder,
    base_url: str = "http://sandbox.invalid",
    settings: dict[str, Any] | None = None,
) -> Delivery:
    return Delivery(
        tracking_id=new_tracking_id(),
        destination_id=f"{provider}-money",
        destination=Destination(
            provider=provider,
            secret_id="orderbridge/providers/money",
            base_url=f"{base_url}/{provider}",
            settings=settings or _settings(provider, order.currency),
        ),
        order=order,
        source="money-test",
        catalog=CATALOGS[provider],
    )


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = serve(CONFIG, port=0, registry=REGISTRY)
    yield srv
    srv.shutdown()


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        requests.post(f"{srv.url}/_sandbox/reset", timeout=5).raise_for_status()
    yield


# --- the Shopify cases as canonical orders, from their own numbers --------------------------------


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _address(a: dict[str, Any] | None) -> dict[str, Any] | None:
    if not a:
        return None
    fields = {
        "first_name": a.get("first_name"),
        "last_name": a.get("last_name"),
        "company": a.get("company"),
        "address1": a.get("address1"),
        "address2": a.get("address2"),
        "city": a.get("city"),
        "province": a.get("province_code") or a.get("province"),
        "zip": a.get("zip"),
        "country": a.get("country_code"),
        "phone": a.get("phone"),
    }
    return {k: v for k, v in fields.items() if v not in (None, "")}


def order_from_case(payload: dict[str, Any]) -> CanonicalOrder:
    """The case's numbers as Shopify states them: per line `price`, `discount_allocations`,
    `tax_lines`; the order discount is what `subtotal_price` leaves unexplained by the lines;
    shipping lines after their discounts; `total_tax`, `taxes_included`, `total_price`."""
    lines = []
    for item in payload["line_items"]:
        lines.append(
            {
                "sku": item.get("sku") or None,
                "name": item.get("name") or item.get("title"),
                "variant_title": item.get("variant_title") or None,
                "quantity": item["quantity"],
                "unit_price": _amount(item["price"]),
                "discount": sum(
                    (_amount(d["amount"]) for d in item.get("discount_allocations") or []), Decimal(0)
                ),
                "tax": sum((_amount(t["price"]) for t in item.get("tax_lines") or []), Decimal(0)),
                "options": {
                    p["name"]: p["value"]
                    for p in item.get("properties") or []
                    if p.get("name") and p.get("value")
                },
            }
        )
    nets = sum((line["unit_price"] * line["quantity"] - line["discount"] for line in lines), Decimal(0))
    shipping = sum(
        (
            _amount(s["price"])
            - sum((_amount(d["amount"]) for d in s.get("discount_allocations") or []), Decimal(0))
            for s in payload.get("shipping_lines") or []
        ),
        Decimal(0),
    )
    customer = payload.get("customer") or {}
    codes = [d["code"] for d in payload.get("discount_codes") or [] if d.get("code")]
    return CanonicalOrder.model_validate(
        {
            "external_order_id": str(payload["id"]),
            "currency": payload["currency"],
            "buyer": {
                "email": payload.get("email") or payload.get("contact_email") or customer.get("email"),
                "first_name": customer.get("first_name"),
                "last_name": customer.get("last_name"),
                "phone": payload.get("phone") or customer.get("phone"),
            },
            "billing_address": _address(payload.get("billing_address")),
            "shipping_address": _address(payload.get("shipping_address")),
            "lines": lines,
            "coupon": codes[0] if codes else None,
            "order_discount": max(Decimal(0), nets - _amount(payload["subtotal_price"])),
            "shipping_total": shipping,
            "taxes_included": bool(payload.get("taxes_included")),
            "total_tax": _amount(payload.get("total_tax")),
            "total": _amount(payload["total_price"]),
            "test": payload.get("test") is True,
        }
    )


def _load_case(name: str) -> dict[str, Any]:
    return json.loads(shared_case("shopify", name).read_bytes())


# What each provider must hold for each case: (currency, total) or the refusal's code.
EXPECTED: dict[tuple[str, str], tuple[str, str] | str] = {
    ("order-usd-tax.json", "lana"): ("USD", "409.94"),
    ("order-usd-tax.json", "komerza"): ("USD", "409.94"),
    ("order-usd-tax.json", "threekit"): ("USD", "409.94"),
    # Hong Kong has no postcodes: Lana needs a zip in the shipping address it would ship to
    ("order-hk-null-zip.json", "lana"): "ADDRESS_ZIP_REQUIRED",
    ("order-hk-null-zip.json", "komerza"): ("USD", "409.94"),  # Komerza takes no address
    ("order-hk-null-zip.json", "threekit"): ("USD", "409.94"),
    # no email: Komerza requires emailAddress; Lana takes the phone as `mobile`
    ("order-phone-only-buyer.json", "lana"): ("USD", "409.94"),
    ("order-phone-only-buyer.json", "komerza"): "EMAIL_REQUIRED",
    ("order-phone-only-buyer.json", "threekit"): ("USD", "409.94"),
    # a test order (the intake keeps it from going live); as an order, still exact, marked test
    ("test-notification-discount.json", "lana"): ("USD", "403.00"),
    ("test-notification-discount.json", "komerza"): ("USD", "403.00"),
    ("test-notification-discount.json", "threekit"): ("USD", "403.00"),
}


def _held(provider: str, record: dict[str, Any]) -> tuple[str, Decimal]:
    """(currency, total) of the order the sandbox holds, as the provider computed or stored it."""
    order = record["order"]
    if provider == "lana":
        return order["currency"], money.from_minor(order["total_price"], order["currency"])
    if provider == "komerza":
        currency = order["currencyCode"]
        return currency, Decimal(str(order["amount"])).quantize(money.quantum(currency))
    return order["metadata"]["currency"], Decimal(order["metadata"]["total"])


def _send(server: SandboxServer, provider: str, order: CanonicalOrder) -> tuple[str, Any]:
    """("code", code) when the adapter refuses, else ("held", the sandbox's record of the order)."""
    d = _delivery(provider, order, server.url)
    adapter = PROVIDERS[provider](destination=d.destination)
    try:
        request = adapter.build_create(d)
    except RequestRejectedError as exc:
        return "code", exc.code
    response = Sender(timeout=5).send(request, adapter.auth_headers(CREDENTIALS[provider]))
    assert isinstance(response, requests.Response), response
    result = adapter.parse_create(response)
    assert result.kind is ResultKind.SUCCEEDED, result
    records = requests.get(f"{server.url}/_sandbox/{provider}/orders", timeout=5).json()
    [record] = records
    return "held", record


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("case", CASE_FILES)
def test_shopify_case_reaches_the_provider_exactly_or_fails_with_a_code(server, case, provider):
    payload = _load_case(case)
    order = order_from_case(payload)
    assert order.amount_due() == _amount(payload["total_price"])  # the case's own numbers add up
    kind, got = _send(server, provider, order)
    expected = EXPECTED[(case, provider)]
    if isinstance(expected, str):
        assert (kind, got) == ("code", expected)
        return
    assert kind == "held", got
    currency, total = _held(provider, got)
    assert (currency, total) == (expected[0], Decimal(expected[1]))
    assert (currency, total) == (payload["currency"], _amount(payload["total_price"]))
    if order.test:  # the provider's order says it is a test order
        request = got["request"]
        if provider == "lana":
            assert "test" in request[0]["tags"]
        elif provider == "komerza":
            assert "test order" in request["metadata"]["orderbridge_order"]
        else:
            assert request["metadata"]["test"] == "true"


def test_shopify_case_details_reach_each_provider(server):
    order = order_from_case(_load_case("order-usd-tax.json"))
    _, lana = _send(server, "lana", order)
    body = lana["request"][0]
    assert "discount_code" not in body and "discount_code:TENOFF" in body["tags"]
    assert "line 1 Custom Engraving: Happy Birthday" in body["tags"]
    titles = [item["title"] for item in body["custom_items"]]
    assert titles[0] == "IPod Nano - 8gb - green [IPOD2008GREEN]" and "Tax" in titles
    assert all(item["taxable"] is False for item in body["custom_items"])

    _, kz = _send(server, "komerza", order)
    assert kz["request"]["cost"] == 409.94 and "409.94" in kz["raw_body"]  # exact text on the wire
    assert "couponCode" not in kz["request"]  # the coupon is in the amount already
    summary = kz["request"]["metadata"]["orderbridge_order"]
    assert summary.startswith(
        "409.94 USD; coupon TENOFF; 1 x IPod Nano - 8gb - green [IPOD2008GREEN] @ 199.00"
    )

    _, tk = _send(server, "threekit", order)
    meta = tk["order"]["metadata"]
    assert {k: meta[k] for k in ("currency", "total", "tax", "shipping", "taxes_included", "coupon")} == {
        "currency": "USD",
        "total": "409.94",
        "tax": "11.94",
        "shipping": "0.00",
        "taxes_included": "false",
        "coupon": "TENOFF",
    }
    first, second = (item["metadata"] for item in tk["order"]["cart"][:2])
    assert first == {
        "name": "IPod Nano - 8gb - green",
        "variant": "green",
        "sku": "IPOD2008GREEN",
        "unit_price": "199.00",
        "discount": "0",
        "tax": "0",
        "properties": {"Custom Engraving": "Happy Birthday"},
    }
    assert "properties" not in second  # no properties: none sent, never "None"


def test_shopify_case_through_the_intake_mapping_agrees_when_it_maps():
    """The intake's own Shopify mapping (being rewritten elsewhere) gives the same money."""
    from orderbridge.intake import mapping

    for case in CASE_FILES:
        payload = _load_case(case)
        try:
            mapped = CanonicalOrder.model_validate(mapping.from_shopify(payload))
        except Exception as exc:  # the mapping is not ours to test: report and skip
            pytest.skip(f"from_shopify does not map {case} yet: {exc}")
        ours = order_from_case(payload)
        assert (mapped.currency, mapped.amount_due()) == (ours.currency, ours.amount_due()), case


# --- currency and precision at the sandboxes, over HTTP --------------------------------------------


def test_lana_sandbox_refuses_a_currency_the_shop_does_not_sell_in(server):
    body = [{"currency": "USD", "line_items": [{"variant_id": "va_Any1", "quantity": 1}]}]
    r = requests.post(
        f"{server.url}/lana/orders.json",
        params={"shop_id": LANA_EUR_SHOP},
        json=body,
        headers={"Authorization": f"Bearer {LANA_TOKEN}"},
        timeout=5,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 1000
    assert [f["field"] for f in error["meta"]["fields"]] == ["0.currency"]


def test_lana_adapter_refuses_a_currency_the_destination_does_not_take():
    d = _delivery("lana", _order_in("EUR"), settings={"shop_id": LANA_SHOP, "currencies": ["USD"]})
    with pytest.raises(RequestRejectedError) as err:
        LanaProvider(destination=d.destination).build_create(d)
    assert err.value.code == "CURRENCY_NOT_SUPPORTED"


def test_komerza_refuses_an_order_not_in_the_store_currency():
    d = _delivery("komerza", _order_in("EUR"), settings=_settings("komerza", "USD"))
    with pytest.raises(RequestRejectedError) as err:
        KomerzaProvider(destination=d.destination).build_create(d)
    assert err.value.code == "CURRENCY_NOT_SUPPORTED" and "EUR" in err.value.message


@pytest.mark.parametrize(
    ("currency", "cost", "ok"),
    [("JPY", "1500", True), ("JPY", "1500.5", False), ("KWD", "1.234", True), ("KWD", "1.2345", False)],
)
def test_komerza_sandbox_keeps_the_store_currency_units(server, currency, cost, ok):
    r = requests.post(
        f"{server.url}/komerza/stores/{KZ_STORES[currency]}/orders",
        json={"emailAddress": "a@example.com", "gateway": "stripe", "cost": float(cost)},
        headers={"Authorization": f"Bearer {KZ_TOKEN}"},
        timeout=5,
    )
    body = r.json()
    if ok:
        assert r.status_code == 200 and body["data"]["currencyCode"] == currency
        assert Decimal(str(body["data"]["amount"])) == Decimal(cost)
    else:
        assert (
            r.status_code == 400 and body["code"] == "ValidationError" and body["invalidFields"] == ["cost"]
        )


def test_lana_minor_units_follow_iso_4217():
    # XOF has no minor unit, IQD three: never a hand-kept table that multiplies by 100
    for currency, price, units in (("XOF", "1500", 1500), ("IQD", "1.250", 1250), ("JPY", "980", 980)):
        order = CanonicalOrder.model_validate(
            {
                "currency": currency,
                "buyer": {"email": "a@example.com"},
                "lines": [{"name": "Thing", "quantity": 1, "unit_price": price}],
                "total": price,
            }
        )
        d = _delivery("lana", order)
        body = LanaProvider(destination=d.destination).build_create(d).json[0]
        assert body["custom_items"][0]["price"] == units, currency


def _order_in(currency: str) -> CanonicalOrder:
    return CanonicalOrder.model_validate(
        {
            "currency": currency,
            "buyer": {"email": "a@example.com"},
            "lines": [{"sku": "TEE-BLUE-M", "quantity": 1, "unit_price": "10"}],
        }
    )


# --- (b) properties over generated orders ---------------------------------------------------------

PROPERTIES = settings(
    max_examples=int(os.environ.get("ORDERBRIDGE_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMIT_MINOR = 10**6  # per unit price, in minor units
# refusals that name a real reason (not a bug): the total cannot be verified, a Komerza limit
ALLOWED_CODES = {
    "lana": {"PRICE_UNKNOWN"},
    "komerza": {"PROVIDER_LIMIT", "MISSING_TOTAL"},  # cost outside 0.01..1000000
    "threekit": {"CUSTOM_LINE_UNSUPPORTED"},  # a cart holds saved configurations only
}


@st.composite
def money_orders(draw: st.DrawFn) -> CanonicalOrder:
    currency = draw(st.sampled_from(["JPY", "USD", "KWD"]))

    def amount(high: int) -> Decimal:
        return money.from_minor(draw(st.integers(0, high)), currency)

    lines = []
    for _ in range(draw(st.integers(1, 4))):
        quantity = draw(st.integers(1, 7))
        price_units = draw(st.integers(0, LIMIT_MINOR))
        gross_units = price_units * quantity
        line: dict[str, Any] = {
            "quantity": quantity,
            "unit_price": money.from_minor(price_units, currency),
            "discount": money.from_minor(draw(st.integers(0, gross_units)), currency)
            if draw(st.booleans())
            else Decimal(0),
            "tax": amount(10**4) if draw(st.booleans()) else Decimal(0),
            "options": draw(
                st.dictionaries(
                    st.sampled_from(["Engraving", "Gift note", "Size"]),
                    st.sampled_from(["", "Happy Birthday", "M"]),
                    max_size=2,
                )
            ),
        }
        if draw(st.integers(0, 3)):
            line |= {"sku": draw(st.sampled_from(SKUS)), "name": "Item", "variant_title": "Blue"}
        else:
            line |= {"name": "Custom thing"}
        lines.append(line)
    net_units = sum(
        money.to_minor(line["unit_price"] * line["quantity"] - line["discount"], currency) for line in lines
    )
    data: dict[str, Any] = {
        "currency": currency,
        "buyer": {"email": "buyer@example.com"},
        "lines": lines,
        "order_discount": money.from_minor(draw(st.integers(0, net_units)), currency)
        if draw(st.booleans())
        else Decimal(0),
        "shipping_total": amount(10**5) if draw(st.booleans()) else None,
        "shipping_tax": Decimal(0),
        "taxes_included": draw(st.booleans()),
        "coupon": draw(st.sampled_from([None, "SPRING10"])),
    }
    if draw(st.booleans()):
        data["total_tax"] = amount(10**4)
    order = CanonicalOrder.model_validate(data)
    if draw(st.booleans()):  # a source that states the total states the right one
        order = CanonicalOrder.model_validate({**data, "total": order.computed_total()})
    return order


def _lana_total(body: list[dict[str, Any]]) -> tuple[str, Decimal]:
    account = ln_sandbox.LanaAccount(token=LANA_TOKEN)
    draft, problems = ln_sandbox.validate_order(body[0], account)
    assert not problems, problems.fields
    built = ln_sandbox.build_order(1001, LANA_SHOP, draft, datetime.now(UTC))
    return built["currency"], money.from_minor(built["total_price"], built["currency"])


def _komerza_total(body: dict[str, Any], currency: str) -> tuple[str, Decimal]:
    account = kz_sandbox.KomerzaAccount(token=KZ_TOKEN, currency_code=currency)
    wire = json.loads(json.dumps(body))
    draft, problems = kz_sandbox.validate_form(wire, account)
    assert draft is not None, problems.errors
    lines, missing = kz_sandbox.resolve_lines(draft, account)
    assert not missing
    built = kz_sandbox.build_order(KZ_STORES[currency], draft, lines, account, datetime.now(UTC))
    return built["currencyCode"], Decimal(repr(built["amount"])).quantize(money.quantum(currency))


@PROPERTIES
@given(order=money_orders())
def test_every_provider_charges_what_the_buyer_pays_or_says_why(order):
    due = order.amount_due()
    assert due is not None  # every generated line is priced
    for provider, adapter_class in PROVIDERS.items():
        d = _delivery(provider, order)
        try:
            request = adapter_class(destination=d.destination).build_create(d)
        except RequestRejectedError as exc:
            assert exc.code in ALLOWED_CODES[provider], (provider, exc.code, exc.message)
            if exc.code == "PROVIDER_LIMIT":
                assert "cost" in exc.message and not Decimal("0.01") <= due <= Decimal(1000000)
            if exc.code == "CUSTOM_LINE_UNSUPPORTED":
                assert any(line.sku is None for line in order.lines)
            continue
        if provider == "lana":
            assert _lana_total(request.json) == (order.currency, due)
        elif provider == "komerza":
            assert _komerza_total(request.json, order.currency) == (order.currency, due)
        else:
            body = json.loads(json.dumps(request.json))
            _, problems = tk_sandbox.validate_order(body, tk_sandbox.ThreekitAccount(token=TK_TOKEN))
            assert not problems, problems.details
            assert (body["metadata"]["currency"], Decimal(body["metadata"]["total"])) == (order.currency, due)
            for item, line in zip(body["cart"], order.lines, strict=True):
                assert item["metadata"]["unit_price"] == str(line.unit_price)
                assert item["metadata"].get("properties", {}) == {k: v for k, v in line.options.items() if v}


@PROPERTIES
@given(order=money_orders())
def test_lana_custom_items_are_whole_minor_units_that_add_up_per_line(order):
    d = _delivery("lana", order)
    body = LanaProvider(destination=d.destination).build_create(d).json[0]
    items = body["custom_items"]
    assert all(isinstance(item["price"], int) and item["price"] >= 0 for item in items)
    # one or two custom items per line; the quantities of a line's items add up to its quantity
    extra = ("Shipping", "Tax")
    by_line = [
        li for li in body["line_items"] if items[li["custom_item_index"]["value"]]["title"] not in extra
    ]
    assert sum(li["quantity"] for li in by_line) == sum(line.quantity for line in order.lines)
    assert "discount_code" not in body  # a priced order carries its discounts in its prices


def test_komerza_sends_items_when_its_catalog_charges_what_the_buyer_pays(server):
    order = CanonicalOrder.model_validate(
        {
            "buyer": {"email": "a@example.com"},
            "lines": [{"sku": "TEE-BLUE-M", "quantity": 2, "unit_price": "10.00"}],
            "total": "20.00",
        }
    )
    d = _delivery("komerza", order, server.url)
    priced = {**CATALOGS["komerza"]["TEE-BLUE-M"], "price": "10.00"}  # the sandbox store's price
    d = Delivery(**{**vars(d), "catalog": {"TEE-BLUE-M": priced}})
    adapter = KomerzaProvider(destination=d.destination)
    request = adapter.build_create(d)
    assert "cost" not in request.json and request.json["items"][0]["quantity"] == 2
    response = Sender(timeout=5).send(request, adapter.auth_headers(CREDENTIALS["komerza"]))
    assert adapter.parse_create(response).kind is ResultKind.SUCCEEDED
    [record] = requests.get(f"{server.url}/_sandbox/komerza/orders", timeout=5).json()
    assert Decimal(str(record["order"]["amount"])) == Decimal("20.00")
    # the buyer paid less than the catalog price: the amount goes as cost instead
    cheaper = order.model_copy(
        update={
            "lines": [order.lines[0].model_copy(update={"discount": Decimal(1)})],
            "total": Decimal("19.00"),
        }
    )
    body = adapter.build_create(Delivery(**{**vars(d), "order": cheaper})).json
    assert body["cost"] == 19.0 and "items" not in body
