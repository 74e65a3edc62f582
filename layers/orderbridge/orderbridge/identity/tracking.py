"""Keyed, derived tracking ids and per-field content digests.

Identity, in order of preference (the first the order has):

| kind | scope | value |
| --- | --- | --- |
| `order` | the shop | the shop's own order id (`external_order_id`) |
| `event` | the source | the sender's event id (`webhook-id`, `X-Shopify-Event-Id`, ...) |
| `submission` | the form key | the page's `submission_id` (forms) |
| `body` | the source | SHA-256 of the raw body (nothing better) |

The shop defaults to the source's name; configuring the same `shop` on several sources (a
store's webhook and its feed import) makes them name the same order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orderbridge.exceptions import CredentialsError

IdentityKind = Literal["order", "event", "submission", "body"]
_SEPARATOR = "\x1f"  # unit separator: cannot occur in a name, so ("ab", "c") != ("a", "bc")


@dataclass(frozen=True)
class OrderIdentity:
    """What names one order where it was placed (see the module docstring for the rule)."""

    kind: IdentityKind
    scope: str
    value: str

    @classmethod
    def of(
        cls,
        *,
        shop: str,
        source: str,
        external_order_id: str | None = None,
        event_id: str | None = None,
        submission_id: str | None = None,
        form_key: str | None = None,
        body: bytes | None = None,
    ) -> OrderIdentity:
        """The best identity the inputs allow. Raises ValueError when there is none at all."""
        if external_order_id:
            return cls("order", shop, external_order_id)
        if event_id:
            return cls("event", source, event_id)
        if submission_id:
            return cls("submission", form_key or source, submission_id)
        if body is not None:
            return cls("body", source, hashlib.sha256(body).hexdigest())
        raise ValueError("an order needs an external_order_id, an event id, a submission id or a body")

    def text(self) -> str:
        return _SEPARATOR.join((self.kind, self.scope, self.value))


class TrackingIds:
    """Derives tracking ids (`ob_` + 32 hex digits) and content digests with one secret key.

    `key` returns the key's bytes (read from Secrets Manager and cached by the caller's store);
    it raises CredentialsError when the secret cannot be read, which callers treat as retryable.
    The key must never change once orders have been taken: a new key gives every order a new id,
    so a redelivery across the change would no longer be recognised.
    """

    def __init__(self, *, key: Callable[[], bytes]) -> None:
        self._key = key

    def tracking_id(self, identity: OrderIdentity) -> str:
        return "ob_" + self._mac(identity.text())[:32]

    def digests(self, order: Mapping[str, Any]) -> dict[str, str]:
        """`content_digests` keyed with the secret (a digest of an email is no longer guessable)."""
        return content_digests(order, mac=self._mac)

    def _mac(self, text: str) -> str:
        key = self._key()
        if not key:
            raise CredentialsError("the tracking id key is empty")
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_secret(cls, credentials: Any, secret_id: str) -> TrackingIds:
        """Key from a JSON secret `{"key": "..."}` read through a `CredentialStore`."""

        def key() -> bytes:
            value = credentials.get(secret_id)
            raw = value.get("key") or value.get("token")
            if not raw:
                raise CredentialsError(f"secret {secret_id!r} has no 'key'")
            return str(raw).encode()

        return cls(key=key)


def content_digests(order: Mapping[str, Any], *, mac: Callable[[str], str]) -> dict[str, str]:
    """One short digest per top-level field of a canonical order (JSON mode), to tell whether
    and where two copies of the "same" order differ without keeping the order itself."""
    return {
        name: mac(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))[:16]
        for name, value in sorted(order.items())
    }


def differing_fields(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Top-level fields whose digests differ (present in only one counts as differing)."""
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
