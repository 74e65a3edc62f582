"""Webhook signature schemes, verified over the raw body before anything is parsed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from orderbridge.exceptions import SignatureError


class SecretFormatError(ValueError):
    """A configured signing secret cannot be used: our configuration error (503), not a 401."""


def signing_keys(secret: Mapping[str, object]) -> list[str]:
    """The signing keys in a webhook source's secret, as read by the intake: `{"secrets": [...]}`
    (two while rotating), else `{"secret": ...}` or `{"token": ...}` (a plain-string secret reads
    as `{"token": ...}`). Empty entries are dropped; no key at all is an empty list."""
    found = secret.get("secrets") or [secret.get("secret") or secret.get("token")]
    return [str(s) for s in found if s] if isinstance(found, list) else [str(found)]


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _standard_key(secret: str) -> bytes:
    """A Standard Webhooks signing secret (`whsec_<base64>`) as its key bytes.

    Raises SecretFormatError for one that cannot be decoded (`v1,whsec_...` pasted from a
    signature, a truncated value): our configuration, never the sender's fault.
    """
    text = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError("the signing secret is not whsec_<base64>") from None
    if not key:
        raise SecretFormatError("the signing secret is empty")
    return key


def _standard_signatures(value: str) -> list[bytes]:
    """Every well-formed `v1,<base64>` entry of a `webhook-signature` (space separated); malformed
    entries (no comma, another version, bad base64, doubled spaces) are skipped, as the
    specification says: another entry may still match."""
    found = []
    for entry in value.split(" "):
        version, _, sig = entry.strip().partition(",")
        if version != "v1" or not sig:
            continue
        try:
            found.append(base64.b64decode(sig, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_standard(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
) -> str:
    """Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

    The signed content is `<id>.<timestamp>.<raw body>` (HMAC-SHA256, base64). Any of `secrets`
    may match (two are active while a secret is rotated) and any `v1` entry of the header; the
    timestamp must be within `tolerance` seconds either side (WEBHOOK_TOLERANCE_SECONDS, the same
    for every timestamped scheme). Returns the sender's message id, used to deduplicate replays.
    Raises SecretFormatError when a configured secret cannot be decoded.
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
        age = time.time() - int(stamp)
    except ValueError:
        raise SignatureError("SIGNATURE_INVALID", "webhook-timestamp is not an integer") from None
    if abs(age) > tolerance:
        raise SignatureError("SIGNATURE_EXPIRED", f"webhook-timestamp is outside the {tolerance}s window")
    keys = [_standard_key(secret) for secret in secrets]  # a bad secret is ours: say so first
    given = _standard_signatures(signature)
    if not given:
        raise SignatureError("SIGNATURE_INVALID", "webhook-signature has no well-formed v1 entry")
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, candidate) for candidate in given):
            return msg_id
    raise SignatureError("SIGNATURE_INVALID", "no webhook-signature matches the body")


def sign_standard(body: bytes, secret: str, *, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The three headers a Standard Webhooks sender would send (for tests and our own senders)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    digest = base64.b64encode(hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{digest}"}


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


# --- generic HMAC: a header, an algorithm, an encoding, an optional prefix and timestamp ---------

ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _decode_signature(text: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def verify_hmac(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    header: str,
    algorithm: str = "sha256",
    encoding: str = "hex",
    prefix: str = "",
    timestamp_header: str | None = None,
    separator: str = ".",
    tolerance: int = 300,
    event_id_header: str | None = None,
) -> str:
    """An HMAC of the raw body (or of `<timestamp><separator><raw body>` when `timestamp_header` is
    set), hex or base64, optionally after a `prefix` such as `sha256=`, in `header`.

    The header may list several signatures (comma or space separated); malformed entries are
    skipped. Returns the value of `event_id_header` ("" without one).
    """
    h = _lower(headers)
    value = h.get(header.lower())
    if not value:
        raise SignatureError("SIGNATURE_MISSING", f"{header} is required")
    size = ALGORITHMS[algorithm]().digest_size
    given: list[bytes] = []
    for entry in value.replace(",", " ").split():
        if prefix:
            if not entry.lower().startswith(prefix.lower()):
                continue
            entry = entry[len(prefix) :]
        decoded = _decode_signature(entry, encoding)
        if decoded is not None and len(decoded) == size:
            given.append(decoded)
    if not given:
        raise SignatureError(
            "SIGNATURE_INVALID", f"{header} holds no well-formed {encoding} {algorithm} signature"
        )
    signed = body
    if timestamp_header:
        stamp = h.get(timestamp_header.lower())
        if not stamp:
            raise SignatureError("SIGNATURE_MISSING", f"{timestamp_header} is required")
        try:
            age = time.time() - int(stamp.strip())
        except ValueError:
            raise SignatureError("SIGNATURE_INVALID", f"{timestamp_header} is not an integer") from None
        if abs(age) > tolerance:
            raise SignatureError(
                "SIGNATURE_EXPIRED", f"{timestamp_header} is outside the {tolerance}s window"
            )
        signed = stamp.strip().encode() + separator.encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, ALGORITHMS[algorithm]).digest()
        if any(hmac.compare_digest(expected, candidate) for candidate in given):
            return (h.get(event_id_header.lower()) or "")[:128] if event_id_header else ""
    raise SignatureError("SIGNATURE_INVALID", f"{header} does not match the body")


def sign_hmac(
    body: bytes,
    secret: str,
    *,
    algorithm: str = "sha256",
    encoding: str = "hex",
    prefix: str = "",
    timestamp: int | None = None,
    separator: str = ".",
) -> str:
    """The signature header value a generic HMAC sender would send (tests, our own senders)."""
    signed = body if timestamp is None else f"{timestamp}{separator}".encode() + body
    digest = hmac.new(secret.encode(), signed, ALGORITHMS[algorithm]).digest()
    return prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
