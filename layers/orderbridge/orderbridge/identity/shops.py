"""The effective shop of a configured way in: the first part of every order identity it makes.

An order is named by (shop, the shop's own order id) (`OrderIdentity.of`), so the shop a source
names its orders under must never change once orders were taken through it: after a change the
same order gets a new tracking id, and a retry or a second way in creates a second provider order.
`effective_shop` is the one rule (the intake, the importer and both configuration warnings use
it); `shop_changes` / `document_shop_changes` compare two configurations with it (`orderbridge
config validate FILE --stack`, the local run's reload).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Stable code of the warning `shop_changes` gives.
SHOP_CHANGED = "SHOP_CHANGED"
#: What `effective_shop` gives (None) for a WooCommerce source without `shop`, in words.
PER_DELIVERY = "the site each delivery names in X-WC-Webhook-Source"


def effective_shop(entry: Any, name: str, *, headers: Mapping[str, str] | None = None) -> str | None:
    """The shop `entry` names its orders under; `name` is its key in the configuration.

    `entry` is a webhook source's settings, an import source, a form (`FormConfig`) or a queue
    event (`OrderEvent`, name = its `source`). The first that applies:

    1. its `shop`, when set;
    2. a BigCommerce webhook source: its `store_hash`;
    3. a WooCommerce webhook source: the site in the delivery's `X-WC-Webhook-Source` header
       (`headers`), else `name`; without `headers` (a configuration, no delivery) None: it
       depends on each delivery (`PER_DELIVERY`);
    4. a form (or a queue event): its `source`;
    5. `name`.
    """
    configured = getattr(entry, "shop", None)
    if configured:
        return str(configured)
    scheme = getattr(entry, "scheme", None)
    if scheme == "bigcommerce":
        return str(entry.store_hash)
    if scheme == "woocommerce":
        if headers is None:
            return None
        from orderbridge.sources.base import header
        from orderbridge.sources.woocommerce import shop_of

        return shop_of(header(headers, "x-wc-webhook-source")) or name
    source = getattr(entry, "source", None)
    if isinstance(source, str) and source:
        return source
    return name


@dataclass(frozen=True)
class ShopChange:
    """A source of both configurations whose effective shop differs (None: `PER_DELIVERY`)."""

    where: str  # `webhook source 'shop-hooks'`, `import source 'x'`, `form 'fk_...'`
    before: str | None
    after: str | None
    code: str = SHOP_CHANGED

    def message(self) -> str:
        return (
            f"{self.where}: its shop changes from {_shown(self.before)} to {_shown(self.after)}; "
            "orders already taken through it would no longer be recognised as duplicates (a retry "
            "or a re-import of one creates a second provider order). Keep the old shop unless "
            f"no order was taken through it ({self.code})"
        )


def _shown(shop: str | None) -> str:
    return repr(shop) if shop is not None else PER_DELIVERY


def _entries(config: Any) -> dict[str, str | None]:
    """Each way in of a configuration (`OrderbridgeConfig`) -> its effective shop."""
    found: dict[str, str | None] = {}
    for name, hook in config.webhooks.items():
        found[f"webhook source {name!r}"] = effective_shop(hook, name)
    for name, source in config.imports.items():
        found[f"import source {name!r}"] = effective_shop(source, name)
    for key, form in config.forms.items():
        found[f"form {key!r}"] = effective_shop(form, key)
    return found


def shop_changes(before: Any, after: Any) -> list[ShopChange]:
    """The sources of both configurations (`OrderbridgeConfig`) whose effective shop differs.

    A source only in one of them is not a change: a new source has taken no orders yet."""
    old, new = _entries(before), _entries(after)
    return [
        ShopChange(where, old[where], new[where])
        for where in new
        if where in old and old[where] != new[where]
    ]


def document_shop_changes(before: Any, after: Any, *, resource_prefix: str | None = None) -> list[ShopChange]:
    """`shop_changes` of two configuration documents (JSON text, bytes or a dict; `${...}`
    placeholders allowed); none when either is not a valid configuration (a document that the
    functions refuse was never in use, and the one refused is reported as such elsewhere)."""
    from orderbridge.config import InvalidConfigurationError, validate_document

    try:
        old = validate_document(before, local=True, resource_prefix=resource_prefix)
        new = validate_document(after, local=True, resource_prefix=resource_prefix)
    except InvalidConfigurationError:
        return []
    return shop_changes(old, new)
