"""Webhook signature schemes, verified over the raw body before anything is parsed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orderbridge.exceptions import SignatureError


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify_standard(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
) -> str:
    """Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

    Any of `secrets` may match (two are active while a secret is rotated). Returns the
    sender's message id, used to deduplicate replays.
    """
    h = _lower(headers)
    msg_id, stamp, signature = (
        h.get("webhook-id"),
        h.get("webhook-timestamp"),
        h.get("webhook-signature"),
    )
    if not (msg_id and stamp and signature):
        raise SignatureError(
            "SIGNATURE_MISSING", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        age = time.time() - float(stamp)
    except ValueError:
        raise SignatureError("SIGNATURE_INVALID", "webhook-timestamp is not a number") from None
    if abs(age) > tolerance:
        raise SignatureError("SIGNATURE_EXPIRED", f"webhook-timestamp is outside the {tolerance}s window")
    subset = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    for secret in secrets:
        try:
            Webhook(secret).verify(body, subset, json_parse=False)
        except WebhookVerificationError as exc:
            if "too old" in str(exc) or "too new" in str(exc):
                raise SignatureError("SIGNATURE_EXPIRED", "webhook-timestamp is outside the window") from None
            continue
        except (ValueError, binascii.Error, UnicodeDecodeError):
            # malformed signature list or a body that is not UTF-8: not a match
            continue
        return msg_id
    raise SignatureError("SIGNATURE_INVALID", "no webhook-signature matches the body")


def verify_shopify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> str:
    """Shopify: base64 HMAC-SHA256 of the raw body in `X-Shopify-Hmac-Sha256`.

    Returns the event id (`X-Shopify-Event-Id`, or the webhook id) for deduplication.
    """
    h = _lower(headers)
    given = h.get("x-shopify-hmac-sha256")
    if not given:
        raise SignatureError("SIGNATURE_MISSING", "X-Shopify-Hmac-Sha256 is required")
    try:
        given_bytes = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("SIGNATURE_INVALID", "X-Shopify-Hmac-Sha256 is not base64") from None
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        if hmac.compare_digest(expected, given_bytes):
            return h.get("x-shopify-event-id") or h.get("x-shopify-webhook-id") or ""
    raise SignatureError("SIGNATURE_INVALID", "X-Shopify-Hmac-Sha256 does not match the body")


def sign_shopify(body: bytes, secret: str) -> str:
    """The header value Shopify would send (for the demo, tests and senders of our own)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


STRIPE_HEADER_DEFAULT = "Stripe-Signature"


def verify_stripe(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    tolerance: int,
    header: str = STRIPE_HEADER_DEFAULT,
) -> str:
    """Stripe-style: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (several `v1` allowed).

    The timestamp is signed with the body, so a captured delivery cannot be replayed after the
    tolerance window; inside it, the event id in the body deduplicates (the header carries none,
    so this returns "").
    """
    value = _lower(headers).get(header.lower())
    if not value:
        raise SignatureError("SIGNATURE_MISSING", f"{header} is required")
    stamp: str | None = None
    given: list[bytes] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t":
            stamp = item
        elif key == "v1":
            try:
                given.append(bytes.fromhex(item))
            except ValueError:
                continue  # a malformed entry matches nothing; another entry may
    if stamp is None or not given:
        raise SignatureError("SIGNATURE_INVALID", f"{header} needs t=<timestamp> and at least one v1=<hex>")
    try:
        age = time.time() - int(stamp)
    except ValueError:
        raise SignatureError("SIGNATURE_INVALID", f"{header} timestamp is not an integer") from None
    if abs(age) > tolerance:
        raise SignatureError("SIGNATURE_EXPIRED", f"{header} timestamp is outside the {tolerance}s window")
    signed = stamp.encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, candidate) for candidate in given):
            return ""
    raise SignatureError("SIGNATURE_INVALID", f"no v1 signature in {header} matches the body")


def sign_stripe(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The header value a Stripe-style sender would send (for the demo, tests and our own senders)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"
