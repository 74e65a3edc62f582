"""Loading the configuration document (routes, destinations, forms, webhook sources)."""

from orderbridge.config.check import InvalidConfigurationError, validate_document
from orderbridge.config.store import ConfigStore, S3ConfigProvider

__all__ = ["ConfigStore", "InvalidConfigurationError", "S3ConfigProvider", "validate_document"]
