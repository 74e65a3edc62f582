"""Which adapter serves which provider name. Adding a provider adds one line here.

Entries are import paths so a function only imports the adapters it uses (cold start).
"""

from __future__ import annotations

import importlib
from functools import cache

from pydantic import BaseModel

from orderbridge.exceptions import UnknownProviderError
from orderbridge.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "bigcommerce": "orderbridge.providers.bigcommerce:BigCommerceProvider",
    "komerza": "orderbridge.providers.komerza:KomerzaProvider",
    "threekit": "orderbridge.providers.threekit:ThreekitProvider",
    "lana": "orderbridge.providers.lana:LanaProvider",
}


def registered_providers() -> list[str]:
    return sorted(PROVIDERS)


@cache
def get_provider_class(name: str) -> type[Provider]:
    try:
        module_name, _, class_name = PROVIDERS[name].partition(":")
    except KeyError:
        raise UnknownProviderError(f"no adapter registered for provider {name!r}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, Provider)
    return cls


def provider_models(name: str) -> tuple[type[BaseModel] | None, type[BaseModel] | None] | None:
    """The provider's `settings_model` and `catalog_entry_model` (None: not declared), or None when
    no adapter is registered under `name`. Used by the configuration model at load time."""
    if name not in PROVIDERS:
        return None
    cls = get_provider_class(name)
    return cls.settings_model, cls.catalog_entry_model
