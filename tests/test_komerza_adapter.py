"""The Komerza adapter in isolation: request building against Komerza's limits, answer reading."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from orderbridge.exceptions import CredentialsError, RequestRejectedError
from orderbridge.providers.base import ResultKind
from orderbridge.providers.komerza import REFERENCE_KEY, KomerzaProvider
from orderbridge.providers.registry import get_provider_class
from tests.factories import delivery, order

PRODUCT = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
VARIANT = "5d7e1f2a-1b2c-4d3e-9f40-0a1b2c3d4e5f"
ORDER_ID = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
CATALOG = {"TEE-BLUE-M": {"productId": PRODUCT, "variantId": VARIANT}, "MUG-001": {"productId": PRODUCT}}
SETTINGS = {
    "store_id": "st_demo",
    "gateway": "stripe",
    "return_url": "https://shop.example/thanks",
    "checkout_url_template": "https://checkout.komerza.com/{order_id}",
}


def _order(**changes):
    base = {
        "lines": [{"sku": "TEE-BLUE-M", "quantity": 2}],
        "coupon": "SPRING10",
        "metadata": {"affiliate": "ada-ref", "campaign": "spring"},
        "buyer": {
            "email": "ada@example.com",
            "ip_address": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
        },
    }
    base.update(changes)
    return order(**base)


def _delivery(order_=None, settings=None, catalog=None):
    return delivery(
        order_ or _order(),
        provider="komerza",
        settings=SETTINGS if settings is None else settings,
        catalog=CATALOG if catalog is None else catalog,
    )


def _provider(d):
    return KomerzaProvider(destination=d.destination)


def _build(d):
    return _provider(d).build_create(d)


def _rejected(d) -> RequestRejectedError:
    with pytest.raises(RequestRejectedError) as err:
        _build(d)
    return err.value


def _response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers.update(headers or {})
    r.reason = "reason"
    return r


def test_registry_resolves_komerza():
    assert get_provider_class("komerza") is KomerzaProvider


def test_create_request_field_by_field():
    d = _delivery()
    req = _build(d)
    assert req.method == "POST"
    assert req.url == "http://sandbox.invalid/bigcommerce/stores/st_demo/orders"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json == {
        "emailAddress": "ada@example.com",
        "gateway": "stripe",
        "items": [{"productId": PRODUCT, "variantId": VARIANT, "quantity": 2}],
        "sendReceipt": True,
        "couponCode": "SPRING10",
        "affiliateCode": "ada-ref",
        "returnUrl": "https://shop.example/thanks",
        "metadata": {"affiliate": "ada-ref", "campaign": "spring", REFERENCE_KEY: d.tracking_id},
        "ipAddress": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
        "countryCode": "GB",
    }
    assert "paymentMethod" not in req.json and "cost" not in req.json


def test_settings_gateway_wins_over_the_storefront_payment_method_and_send_receipt_is_configurable():
    d = _delivery(_order(payment_method="paypal"), settings={**SETTINGS, "send_receipt": False})
    body = _build(d).json
    assert body["gateway"] == SETTINGS["gateway"] and body["sendReceipt"] is False
    no_gateway = {k: v for k, v in SETTINGS.items() if k != "gateway"}
    assert _build(_delivery(_order(payment_method="paypal"), settings=no_gateway)).json["gateway"] == "paypal"


def test_reference_is_stable_and_wins_over_order_metadata():
    d = _delivery(_order(metadata={REFERENCE_KEY: "forged"}))
    assert _build(d).json["metadata"] == {REFERENCE_KEY: d.tracking_id}
    assert _build(d).json == _build(d).json


def test_optional_fields_left_out_when_absent():
    d = _delivery(
        _order(coupon=None, metadata={}, buyer={"email": "a@example.com"}, billing_address=None),
        settings={"store_id": "st_demo", "gateway": "stripe"},
    )
    body = _build(d).json
    assert set(body) == {"emailAddress", "gateway", "items", "sendReceipt", "metadata"}


def test_country_falls_back_to_shipping_address():
    o = _order()
    o = o.model_copy(
        update={
            "shipping_address": o.billing_address.model_copy(update={"country": "FR"}),
            "billing_address": None,
        }
    )
    assert _build(_delivery(o)).json["countryCode"] == "FR"


# --- cost mode --------------------------------------------------------------------------------------


def test_cost_mode_sends_the_total_and_no_items():
    d = _delivery(_order(total="42.50"), settings={**SETTINGS, "mode": "cost"})
    body = _build(d).json
    assert body["cost"] == 42.5 and "items" not in body


def test_cost_mode_ignores_lines_komerza_could_not_express():
    d = _delivery(
        _order(total="12.45", lines=[{"name": "Engraving", "quantity": 1, "unit_price": "7.50"}]),
        settings={**SETTINGS, "mode": "cost"},
    )
    assert _build(d).json["cost"] == 12.45  # 7.50 and 4.95 shipping


def test_cost_mode_without_total_is_refused():
    err = _rejected(_delivery(_order(), settings={**SETTINGS, "mode": "cost"}))
    assert err.code == "MISSING_TOTAL"


@pytest.mark.parametrize(
    ("total", "ok"), [("0.01", True), ("1000000", True), ("0", False), ("1000000.01", False)]
)
def test_cost_limits_both_sides(total, ok):
    # the canonical model caps totals at 1000000, so the over-limit one is set without validation
    o = _order().model_copy(update={"total": Decimal(total)})
    d = _delivery(o, settings={**SETTINGS, "mode": "cost"})
    if ok:
        assert _build(d).json["cost"] == float(total)
    else:
        err = _rejected(d)
        assert err.code == "PROVIDER_LIMIT" and "cost" in err.message


# --- limits, each from both sides -------------------------------------------------------------------


def _meta(n: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(n)}


def test_metadata_20_keys_with_the_reference_pass_21_are_refused():
    assert len(_build(_delivery(_order(metadata=_meta(19)))).json["metadata"]) == 20
    err = _rejected(_delivery(_order(metadata=_meta(20))))
    assert err.code == "PROVIDER_LIMIT" and "metadata" in err.message


def test_metadata_key_40_passes_41_is_refused():
    ok = _order().model_copy(update={"metadata": {"k" * 40: "v"}})
    assert "k" * 40 in _build(_delivery(ok)).json["metadata"]
    over = _order().model_copy(update={"metadata": {"k" * 41: "v"}})
    err = _rejected(_delivery(over))
    assert err.code == "PROVIDER_LIMIT" and "metadata" in err.message


def test_metadata_value_500_passes_501_is_refused():
    assert _build(_delivery(_order(metadata={"note": "v" * 500}))).json["metadata"]["note"] == "v" * 500
    over = _order().model_copy(update={"metadata": {"note": "v" * 501}})
    err = _rejected(_delivery(over))
    assert err.code == "PROVIDER_LIMIT" and "metadata" in err.message


def _url(length: int) -> str:
    head = "https://shop.example/"
    return head + "a" * (length - len(head))


@pytest.mark.parametrize(("url", "ok"), [(_url(2048), True), (_url(2049), False), ("not a url", False)])
def test_return_url_limit_and_validity(url, ok):
    d = _delivery(settings={**SETTINGS, "return_url": url})
    if ok:
        assert _build(d).json["returnUrl"] == url
    else:
        err = _rejected(d)
        assert err.code == "PROVIDER_LIMIT" and "returnUrl" in err.message


def test_coupon_code_32_passes_33_is_refused():
    assert _build(_delivery(_order(coupon="C" * 32))).json["couponCode"] == "C" * 32
    err = _rejected(_delivery(_order(coupon="C" * 33)))
    assert err.code == "PROVIDER_LIMIT" and "couponCode" in err.message


def test_affiliate_code_256_passes_257_is_refused():
    assert _build(_delivery(_order(metadata={"affiliate": "a" * 256}))).json["affiliateCode"] == "a" * 256
    err = _rejected(_delivery(_order(metadata={"affiliate": "a" * 257})))
    assert err.code == "PROVIDER_LIMIT" and "affiliateCode" in err.message


def test_gateway_256_passes_257_is_refused():
    assert _build(_delivery(settings={**SETTINGS, "gateway": "g" * 256})).json["gateway"] == "g" * 256
    # the destination's gateway: its settings model refuses it (the configuration check does too)
    err = _rejected(_delivery(settings={**SETTINGS, "gateway": "g" * 257}))
    assert err.code == "DESTINATION_MISCONFIGURED" and "gateway" in err.message


def _with_buyer(**changes):
    o = _order()
    return o.model_copy(update={"buyer": o.buyer.model_copy(update=changes)})


def test_email_address_256_passes_257_is_refused():
    email = "a" * (256 - len("@example.com")) + "@example.com"
    assert _build(_delivery(_with_buyer(email=email))).json["emailAddress"] == email
    err = _rejected(_delivery(_with_buyer(email="a" + email)))
    assert err.code == "PROVIDER_LIMIT" and "emailAddress" in err.message


def test_ip_address_45_passes_46_is_refused():
    assert _build(_delivery(_with_buyer(ip_address="1" * 45))).json["ipAddress"] == "1" * 45
    err = _rejected(_delivery(_with_buyer(ip_address="1" * 46)))
    assert err.code == "PROVIDER_LIMIT" and "ipAddress" in err.message


def test_user_agent_512_passes_513_is_refused():
    assert _build(_delivery(_with_buyer(user_agent="u" * 512))).json["userAgent"] == "u" * 512
    err = _rejected(_delivery(_with_buyer(user_agent="u" * 513)))
    assert err.code == "PROVIDER_LIMIT" and "userAgent" in err.message


# --- what Komerza would refuse, refused before sending ----------------------------------------------


def test_unknown_sku_names_the_sku():
    err = _rejected(_delivery(_order(lines=[{"sku": "NOPE-1", "quantity": 1}])))
    assert err.code == "UNKNOWN_SKU" and "NOPE-1" in err.message


def test_unpriced_line_without_sku_is_unsupported():
    err = _rejected(_delivery(_order(lines=[{"name": "Engraving", "quantity": 1}])))
    assert err.code == "CUSTOM_LINE_UNSUPPORTED" and "Engraving" in err.message


def test_priced_line_without_sku_goes_as_the_cost_the_buyer_pays():
    d = _delivery(_order(lines=[{"name": "Engraving", "quantity": 1, "unit_price": "7.50"}]))
    body = _build(d).json
    assert body["cost"] == 12.45 and "items" not in body and "couponCode" not in body
    assert body["metadata"]["orderbridge_order"].startswith("12.45 USD; coupon SPRING10; 1 x Engraving")


def test_price_difference_can_be_refused_instead():
    d = _delivery(
        _order(lines=[{"name": "Engraving", "quantity": 1, "unit_price": "7.50"}]),
        settings={**SETTINGS, "on_price_difference": "refuse"},
    )
    err = _rejected(d)
    assert err.code == "PRICE_NOT_EXPRESSIBLE" and "12.45" in err.message


def test_catalog_entry_without_variant_is_misconfigured():
    err = _rejected(_delivery(_order(lines=[{"sku": "MUG-001", "quantity": 1}])))
    assert err.code == "DESTINATION_MISCONFIGURED" and "MUG-001" in err.message


def test_catalog_ids_must_be_uuids():
    d = _delivery(catalog={"TEE-BLUE-M": {"productId": "111", "variantId": VARIANT}})
    err = _rejected(d)
    assert err.code == "DESTINATION_MISCONFIGURED"
    assert "productId" in err.message and "TEE-BLUE-M" in err.message


@pytest.mark.parametrize(
    "settings",
    [
        {"gateway": "stripe"},
        {"store_id": "st_demo"},
        {**SETTINGS, "mode": "invoice"},
        {**SETTINGS, "checkout_url_template": "https://checkout.komerza.com/{id}"},
    ],
)
def test_misconfigured_destination_is_refused(settings):
    assert _rejected(_delivery(settings=settings)).code == "DESTINATION_MISCONFIGURED"


def test_auth_header_and_missing_key():
    p = _provider(_delivery())
    assert p.auth_headers({"api_key": "kz_secret"})["Authorization"] == "Bearer kz_secret"
    with pytest.raises(CredentialsError) as err:
        p.auth_headers({"apikey": "kz_secret"})
    assert "api_key" in str(err.value) and "kz_secret" not in str(err.value)


def test_lookup_lists_the_buyers_orders_in_a_window():
    # Komerza's "Get orders" (OpenAPI, as generated into its SDK): email, dateFrom, dateTo, Page, PageSize
    now = datetime.now(UTC).replace(microsecond=0)
    placed = now - timedelta(days=3)
    d = _delivery(_order(placed_at=placed.isoformat()))
    assert KomerzaProvider.supports_lookup is True
    req = _provider(d).build_lookup(d)
    assert req.method == "GET" and req.url.endswith("/stores/st_demo/orders")
    assert req.params["email"] == "ada@example.com"
    assert req.params["Page"] == "1" and req.params["PageSize"] == "50"
    assert req.headers == {"X-Orderbridge-Tracking-Id": d.tracking_id}

    def window(request) -> tuple[datetime, datetime]:
        return tuple(
            datetime.fromisoformat(request.params[k].replace("Z", "+00:00")) for k in ("dateFrom", "dateTo")
        )

    date_from, date_to = window(req)
    assert date_from == placed - timedelta(days=1)  # Komerza cannot hold it before it was placed
    assert date_to >= now + timedelta(days=1) - timedelta(seconds=5)
    # an old placed_at (or none): at most lookup_days back
    for old in (_order(placed_at=(now - timedelta(days=400)).isoformat()), _order()):
        d_old = _delivery(old)
        start, _ = window(_provider(d_old).build_lookup(d_old))
        assert abs((start - (now - timedelta(days=30))).total_seconds()) < 5
    no_email = _delivery(_order(buyer={"phone": "+15555550100"}))
    with pytest.raises(RequestRejectedError) as err:
        _provider(no_email).build_lookup(no_email)
    assert err.value.code == "EMAIL_REQUIRED"


class _FakeSession:
    """Stands in for the further reads `parse_lookup` makes (pages and single orders)."""

    def __init__(self, answers: dict[str, requests.Response]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict | None]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get(self, url, headers=None, params=None, timeout=None):
        self.asked.append((url, params))
        key = url + (f"?Page={params['Page']}" if params else "")
        answer = self.answers.get(key)
        if answer is None:
            raise requests.ConnectionError("dropped")
        return answer


def _kz_json(status: int, body) -> requests.Response:
    return _response(status, json.dumps(body).encode())


def _one(order_id: str, metadata) -> requests.Response:
    return _kz_json(
        200,
        {
            "success": True,
            "message": None,
            "code": None,
            "data": {"order": {"id": order_id, "metadata": metadata}},
        },
    )


def _lookup(d, first_body, answers, monkeypatch, status=200):
    p = _provider(d)
    req = p.build_lookup(d)
    prepared = requests.Request(req.method, req.url, params=req.params, headers=req.headers).prepare()
    first = _kz_json(status, first_body)
    first.request = prepared
    fake = _FakeSession(answers)
    monkeypatch.setattr("orderbridge.providers.komerza.requests.Session", lambda: fake)
    return p.parse_lookup(first), fake


A, B, C = (f"0000000{i}-0000-4000-8000-000000000000" for i in (1, 2, 3))
BASE = "http://sandbox.invalid/bigcommerce/stores/st_demo/orders"


def test_lookup_pages_through_and_matches_the_metadata(monkeypatch):
    d = _delivery()
    answers = {
        f"{BASE}?Page=2": _kz_json(200, {"success": True, "pages": 2, "data": [{"id": C}]}),
        f"{BASE}/{A}": _one(A, {"orderbridge_tracking_id": "ob_other"}),
        f"{BASE}/{B}": _one(B, None),
        f"{BASE}/{C}": _one(C, {"orderbridge_tracking_id": d.tracking_id}),
    }
    found, fake = _lookup(
        d, {"success": True, "pages": 2, "data": [{"id": A}, {"id": B}]}, answers, monkeypatch
    )
    assert found.kind is ResultKind.SUCCEEDED and found.provider_order_id == C
    assert found.redirect_url == f"https://checkout.komerza.com/{C}"
    assert [u for u, _ in fake.asked] == [BASE, f"{BASE}/{A}", f"{BASE}/{B}", f"{BASE}/{C}"]
    assert fake.asked[0][1]["email"] == "ada@example.com"  # page 2 keeps the filters


def test_lookup_not_found_duplicates_and_failures(monkeypatch):
    d = _delivery()
    other = {f"{BASE}/{A}": _one(A, {"orderbridge_tracking_id": "ob_other"})}
    r, _ = _lookup(d, {"success": True, "pages": 1, "data": [{"id": A}]}, other, monkeypatch)
    assert r.kind is ResultKind.NOT_FOUND
    r, _ = _lookup(d, {"success": True, "pages": 1, "data": []}, {}, monkeypatch)
    assert r.kind is ResultKind.NOT_FOUND
    both = {f"{BASE}/{x}": _one(x, {"orderbridge_tracking_id": d.tracking_id}) for x in (A, B)}
    r, _ = _lookup(d, {"success": True, "pages": 1, "data": [{"id": A}, {"id": B}]}, both, monkeypatch)
    assert r.kind is ResultKind.REVIEW and r.error_code == "DUPLICATE_REFERENCE"
    # a read that fails: the order may be the one not read -> retry, never NOT_FOUND
    r, _ = _lookup(d, {"success": True, "pages": 1, "data": [{"id": A}]}, {}, monkeypatch)
    assert r.kind is ResultKind.RETRYABLE and r.unknown_result
    gone = {f"{BASE}/{A}": _kz_json(404, {"success": False, "message": "Not found", "code": "NotFound"})}
    r, _ = _lookup(d, {"success": True, "pages": 1, "data": [{"id": A}]}, gone, monkeypatch)
    assert r.kind is ResultKind.RETRYABLE
    r, _ = _lookup(d, {"success": True, "pages": 2, "data": []}, {}, monkeypatch)  # page 2 lost
    assert r.kind is ResultKind.RETRYABLE
    r, _ = _lookup(d, {"unexpected": True}, {}, monkeypatch)
    assert r.kind is ResultKind.RETRYABLE
    r, _ = _lookup(d, {"success": False, "message": "no", "code": "BadToken"}, {}, monkeypatch, status=401)
    assert r.kind is ResultKind.AUTH
    # without the tracking id header the answer cannot be checked
    bare = _kz_json(200, {"success": True, "pages": 1, "data": []})
    assert _provider(d).parse_lookup(bare).kind is ResultKind.RETRYABLE


def test_lookup_with_too_many_candidates_is_parked(monkeypatch):
    d = _delivery()
    many = [{"id": f"{i:08d}-0000-4000-8000-000000000000"} for i in range(201)]
    r, fake = _lookup(d, {"success": True, "pages": 1, "data": many}, {}, monkeypatch)
    assert r.kind is ResultKind.REVIEW and r.error_code == "LOOKUP_TOO_BROAD" and len(fake.asked) == 0


# --- answers ---------------------------------------------------------------------------------------


def test_success_reads_order_id_and_checkout_redirect():
    body = b'{"success": true, "message": "Created", "code": null, "data": {"id": "%s", "status": "Pending"}}'
    r = _provider(_delivery()).parse_create(_response(200, body % ORDER_ID.encode()))
    assert r.kind is ResultKind.SUCCEEDED and r.provider_order_id == ORDER_ID
    assert r.redirect_url == f"https://checkout.komerza.com/{ORDER_ID}"
    assert r.error_code is None


def test_success_without_checkout_template_has_no_redirect():
    p = _provider(_delivery(settings={"store_id": "st_demo", "gateway": "stripe"}))
    r = p.parse_create(_response(200, b'{"success": true, "data": {"id": "%s"}}' % ORDER_ID.encode()))
    assert r.kind is ResultKind.SUCCEEDED and r.redirect_url is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ValidationError", ResultKind.PERMANENT),
        ("RateLimited", ResultKind.RETRYABLE),
        ("BadToken", ResultKind.AUTH),
    ],
)
def test_200_with_success_false_is_never_a_success(code, kind):
    body = b'{"success": false, "message": "Nope", "code": "%s", "data": null}' % code.encode()
    r = _provider(_delivery()).parse_create(_response(200, body))
    assert r.kind is kind and r.provider_order_id is None
    assert r.error_code == f"KOMERZA_{code}" and r.error_message == "Nope"


def test_400_validation_error_keeps_message_and_fields():
    body = (
        b'{"success": false, "message": "One or more validation errors occurred.", "code": "ValidationError",'
        b' "errors": {"EmailAddress": ["The EmailAddress field is required."]}}'
    )
    r = _provider(_delivery()).parse_create(_response(400, body))
    assert r.kind is ResultKind.PERMANENT and r.http_status == 400
    assert r.error_code == "KOMERZA_ValidationError"
    assert "One or more validation errors occurred." in r.error_message
    assert "EmailAddress: The EmailAddress field is required." in r.error_message


def test_401_bad_token_is_auth():
    body = b'{"success": false, "message": "The API key is invalid", "code": "BadToken"}'
    r = _provider(_delivery()).parse_create(_response(401, body))
    assert r.kind is ResultKind.AUTH and r.error_code == "KOMERZA_BadToken"
    assert r.error_message == "The API key is invalid"


def test_429_rate_limited_is_retryable_with_retry_after():
    body = b'{"success": false, "message": "Slow down", "code": "RateLimited"}'
    r = _provider(_delivery()).parse_create(_response(429, body, {"Retry-After": "12"}))
    assert r.kind is ResultKind.RETRYABLE and r.retry_after == 12
    assert r.error_code == "KOMERZA_RateLimited" and not r.unknown_result


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_without_wrapper_are_retryable(status):
    r = _provider(_delivery()).parse_create(_response(status, b"<html>bad gateway</html>"))
    assert r.kind is ResultKind.RETRYABLE and r.error_code == f"KOMERZA_{status}"
    assert r.error_message == "reason"


def test_404_is_permanent():
    body = b'{"success": false, "message": "Store not found", "code": "NotFound"}'
    r = _provider(_delivery()).parse_create(_response(404, body))
    assert r.kind is ResultKind.PERMANENT and r.error_code == "KOMERZA_NotFound"


@pytest.mark.parametrize(
    "body",
    [b"<html>", b'{"success": true, "data": null}', b'{"success": true, "data": {"status": "x"}}', b"{}"],
)
def test_2xx_without_order_id_is_an_unknown_result(body):
    r = _provider(_delivery()).parse_create(_response(200, body))
    assert r.kind is ResultKind.RETRYABLE and r.unknown_result
