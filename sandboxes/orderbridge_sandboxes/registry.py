"""Which provider sandboxes exist: provider name -> "module:ClassName" of its `ProviderSandbox`.

Adding a provider is one module in this package plus one line here. Entries are imported lazily,
when an app is created, so a half-written module cannot break the others' imports.

Adding a provider (e.g. Komerza), in `orderbridge_sandboxes/komerza.py`::

    class KomerzaAccount(AccountConfig):          # provider-specific account settings, if any
        products: list[str] | None = None

    class KomerzaSandbox(ProviderSandbox):
        name = "komerza"
        account_model = KomerzaAccount
        rules = ("...",)

        def error_response(self, status, message):  # the provider's error shape
            ...

        def register(self, bp, rt):                  # routes, relative to /komerza
            @bp.post("/stores/<store_id>/orders")
            def create(store_id): ...                # rt.account / rt.gate / rt.record_order

and one line below: `"komerza": "orderbridge_sandboxes.komerza:KomerzaSandbox"`. Its accounts go
under `"komerza": {"accounts": {...}}` in `config/sandboxes.json`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from orderbridge_sandboxes.provider import ProviderSandbox

ProviderRef = str | type[ProviderSandbox]

PROVIDERS: dict[str, ProviderRef] = {
    "bigcommerce": "orderbridge_sandboxes.bigcommerce:BigCommerceSandbox",
    "komerza": "orderbridge_sandboxes.komerza:KomerzaSandbox",
    "lana": "orderbridge_sandboxes.lana:LanaSandbox",
    "threekit": "orderbridge_sandboxes.threekit:ThreekitSandbox",
}


def load_provider(ref: ProviderRef) -> ProviderSandbox:
    """Instantiate the provider sandbox a registry entry names."""
    if isinstance(ref, str):
        module_name, _, attr = ref.partition(":")
        cls = getattr(importlib.import_module(module_name), attr or "PROVIDER")
    else:
        cls = ref
    if not (isinstance(cls, type) and issubclass(cls, ProviderSandbox)):
        raise TypeError(f"{ref!r} is not a ProviderSandbox subclass")
    return cls()


def resolve(registry: Mapping[str, ProviderRef] | None = None) -> dict[str, ProviderSandbox]:
    """Every provider of `registry` (default: `PROVIDERS`), instantiated and checked."""
    providers: dict[str, ProviderSandbox] = {}
    for name, ref in (PROVIDERS if registry is None else registry).items():
        provider = load_provider(ref)
        if provider.name != name:
            raise ValueError(f"registry entry {name!r} points at provider {provider.name!r}")
        providers[name] = provider
    return providers
