"""Loading the configuration document (routes, destinations, forms, webhook sources)."""

from orderbridge.config.store import ConfigStore, S3ConfigProvider

__all__ = ["ConfigStore", "S3ConfigProvider"]
