"""Mappings for the layouts shop platforms export, chosen by name in a source's `mapping.preset`.

Each preset is one module with a `MAPPING` dict in the configuration's own terms (`fields`,
`formats`, `skip`, `optional`, `line_cells`, `defaults`); a source's own values override or add to it.
Plain data, no imports: `orderbridge.models.config` validates configurations with them.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

PRESETS: dict[str, str] = {
    "shopify-orders-export": "shopify",
    "woocommerce-orders": "woocommerce",
    "bigcommerce-orders-export": "bigcommerce",
    "shopify-orders-api": "feeds",  # Shopify's REST order JSON (feeds)
    "woocommerce-orders-api": "feeds",  # WooCommerce's wc/v3 order JSON (feeds)
}


def load_preset(name: str) -> dict[str, Any]:
    module = PRESETS.get(name)
    if module is None:
        raise ValueError(f"unknown mapping preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    if module == "feeds":
        from orderbridge.imports.presets import feeds

        return copy.deepcopy(feeds.SHOPIFY_JSON if name.startswith("shopify") else feeds.WOOCOMMERCE_JSON)
    mapping = importlib.import_module(f"{__name__}.{module}").MAPPING
    return copy.deepcopy(mapping)


def load_paging(name: str) -> dict[str, Any]:
    from orderbridge.imports.presets.feeds import PAGING

    if name not in PAGING:
        raise ValueError(f"unknown paging preset {name!r} (known: {', '.join(sorted(PAGING))})")
    return copy.deepcopy(PAGING[name])
