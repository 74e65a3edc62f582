"""orderbridge: storefront events in, provider orders out, exactly once, every outcome on record."""

__version__ = "0.1.0"
