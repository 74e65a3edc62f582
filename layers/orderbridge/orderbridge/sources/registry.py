"""Every webhook source preset, by its `scheme`. Adding one: a module and a line here."""

from __future__ import annotations

from typing import Any

from orderbridge.sources.base import Source
from orderbridge.sources.bigcommerce import BigCommerceSource
from orderbridge.sources.hmac import HmacSource
from orderbridge.sources.shopify import ShopifySource
from orderbridge.sources.standard import StandardSource
from orderbridge.sources.stripe import StripeSource
from orderbridge.sources.woocommerce import WooCommerceSource

SOURCES: dict[str, type[Source]] = {
    cls.scheme: cls
    for cls in (
        ShopifySource,
        WooCommerceSource,
        StandardSource,
        StripeSource,
        HmacSource,
        BigCommerceSource,
    )
}


def source_for(settings: Any) -> Source:
    """The preset that handles a configured webhook source."""
    return SOURCES[settings.scheme](settings)


def settings_models() -> tuple[type[Any], ...]:
    return tuple(cls.settings_model for cls in SOURCES.values())
