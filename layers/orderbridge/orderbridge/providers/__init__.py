"""Provider adapters: one module per provider behind the `Provider` interface."""

from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderRequest,
    ProviderResult,
    RateLimitInfo,
    ResultKind,
)
from orderbridge.providers.registry import get_provider_class, registered_providers

__all__ = [
    "Delivery",
    "Provider",
    "ProviderRequest",
    "ProviderResult",
    "RateLimitInfo",
    "ResultKind",
    "get_provider_class",
    "registered_providers",
]
