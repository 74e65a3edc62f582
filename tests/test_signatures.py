"""Webhook signature schemes, without the network."""

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from orderbridge.exceptions import SignatureError
from orderbridge.intake.signatures import sign_shopify, verify_shopify, verify_standard

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
