"""Webhook signature schemes, without the network."""

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from orderbridge.exceptions import SignatureError
from orderbridge.intake.signatures import (
    sign_shopify,
    sign_stripe,
    verify_shopify,
    verify_standard,
    verify_stripe,
)

SECRET = "whsec_" + base64.b64encode(b"a-test-signing-secret").decode()
OTHER = "whsec_" + base64.b64encode(b"the-next-signing-secret").decode()
BODY = b'{"type":"order.created","data":{}}'


def _headers(secret=SECRET, at=None, msg_id="msg_1", body=BODY):
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def test_standard_accepts_and_returns_message_id():
    assert verify_standard(BODY, _headers(), [SECRET], tolerance=300) == "msg_1"


def test_standard_accepts_either_secret_while_rotating_and_several_signatures():
    assert verify_standard(BODY, _headers(OTHER), [SECRET, OTHER], tolerance=300)
    h = _headers(OTHER)
    h["webhook-signature"] = "v1,AAAA " + h["webhook-signature"]
    assert verify_standard(BODY, h, [SECRET, OTHER], tolerance=300)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h: h.pop("webhook-signature"), "SIGNATURE_MISSING"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "SIGNATURE_INVALID"),
        (lambda h: h.update({"webhook-signature": "garbage"}), "SIGNATURE_INVALID"),
        (lambda h: h.update({"webhook-signature": "v1,!!!notbase64"}), "SIGNATURE_INVALID"),
        (lambda h: h.update({"webhook-id": "msg_2"}), "SIGNATURE_INVALID"),
    ],
)
def test_standard_rejections(mutate, code):
    h = _headers()
    mutate(h)
    with pytest.raises(SignatureError) as err:
        verify_standard(BODY, h, [SECRET], tolerance=300)
    assert err.value.code == code


def test_standard_tolerance_window_both_sides():
    old = _headers(at=datetime.now(UTC) - timedelta(seconds=400))
    new = _headers(at=datetime.now(UTC) + timedelta(seconds=400))
    for h in (old, new):
        with pytest.raises(SignatureError) as err:
            verify_standard(BODY, h, [SECRET], tolerance=300)
        assert err.value.code == "SIGNATURE_EXPIRED"
    inside = _headers(at=datetime.now(UTC) - timedelta(seconds=200))
    assert verify_standard(BODY, inside, [SECRET], tolerance=300)


def test_standard_non_utf8_body_does_not_crash():
    with pytest.raises(SignatureError):
        verify_standard(b"\xff\xfe", _headers(), [SECRET], tolerance=300)


def test_shopify_roundtrip_tamper_and_rotation():
    sig = sign_shopify(BODY, "s1")
    headers = {"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Event-Id": "ev-1"}
    assert verify_shopify(BODY, headers, ["s1"]) == "ev-1"
    assert verify_shopify(BODY, headers, ["s0", "s1"]) == "ev-1"
    with pytest.raises(SignatureError) as err:
        verify_shopify(BODY + b" ", headers, ["s1"])
    assert err.value.code == "SIGNATURE_INVALID"
    with pytest.raises(SignatureError) as err:
        verify_shopify(BODY, {"X-Shopify-Hmac-Sha256": "%%%"}, ["s1"])
    assert err.value.code == "SIGNATURE_INVALID"
    with pytest.raises(SignatureError) as err:
        verify_shopify(BODY, {}, ["s1"])
    assert err.value.code == "SIGNATURE_MISSING"


def test_secret_values_never_appear_in_errors():
    with pytest.raises(SignatureError) as err:
        verify_shopify(BODY, {"X-Shopify-Hmac-Sha256": sign_shopify(BODY, "wrong")}, ["the-real-secret"])
    assert "the-real-secret" not in str(err.value)
    _ = time


# --- Stripe-style: Stripe-Signature: t=<unix>,v1=<hex hmac of "t.body"> -------------------------


def _stripe(body=BODY, secret="sk_1", at=None, header="Stripe-Signature"):
    return {header: sign_stripe(body, secret, timestamp=at)}


def test_stripe_accepts_and_returns_no_header_event_id():
    assert verify_stripe(BODY, _stripe(), ["sk_1"], tolerance=300) == ""


def test_stripe_several_v1_entries_and_rotation():
    stamp = int(time.time())
    theirs = sign_stripe(BODY, "sk_new", timestamp=stamp).split(",")[1]
    # the sender signs with both secrets while rotating; any one v1 entry may match any secret
    both = {"Stripe-Signature": f"t={stamp},v1={'0' * 64},{theirs},v0=ignored"}
    with pytest.raises(SignatureError):
        verify_stripe(BODY, both, ["sk_old"], tolerance=300)
    assert verify_stripe(BODY, both, ["sk_old", "sk_new"], tolerance=300) == ""
    assert verify_stripe(BODY, both, ["sk_new"], tolerance=300) == ""


def test_stripe_custom_header_name_is_case_insensitive():
    headers = _stripe(header="x-acme-signature")
    assert verify_stripe(BODY, headers, ["sk_1"], tolerance=300, header="X-Acme-Signature") == ""
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, headers, ["sk_1"], tolerance=300)
    assert err.value.code == "SIGNATURE_MISSING"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "SIGNATURE_MISSING"),
        ("v1=abcd", "SIGNATURE_INVALID"),  # no timestamp
        ("t=123", "SIGNATURE_INVALID"),  # no v1
        ("t=soon,v1=" + "a" * 64, "SIGNATURE_INVALID"),
        ("t={now},v1=zz-not-hex", "SIGNATURE_INVALID"),
        ("t={now},v1=" + "a" * 64, "SIGNATURE_INVALID"),
    ],
)
def test_stripe_rejections(value, code):
    headers = {"Stripe-Signature": value.format(now=int(time.time()))} if value else {}
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, headers, ["sk_1"], tolerance=300)
    assert err.value.code == code


def test_stripe_signature_covers_body_and_timestamp():
    stamp = int(time.time())
    good = sign_stripe(BODY, "sk_1", timestamp=stamp)
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY + b" ", {"Stripe-Signature": good}, ["sk_1"], tolerance=300)
    assert err.value.code == "SIGNATURE_INVALID"
    moved = good.replace(f"t={stamp}", f"t={stamp + 1}")  # a fresher timestamp on an old signature
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, {"Stripe-Signature": moved}, ["sk_1"], tolerance=300)
    assert err.value.code == "SIGNATURE_INVALID"


def test_stripe_tolerance_window_both_sides():
    now = int(time.time())
    for at in (now - 400, now + 400):
        with pytest.raises(SignatureError) as err:
            verify_stripe(BODY, _stripe(at=at), ["sk_1"], tolerance=300)
        assert err.value.code == "SIGNATURE_EXPIRED"
    assert verify_stripe(BODY, _stripe(at=now - 200), ["sk_1"], tolerance=300) == ""


def test_stripe_secret_never_in_the_error():
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, _stripe(secret="wrong"), ["the-real-secret"], tolerance=300)
    assert "the-real-secret" not in str(err.value)
