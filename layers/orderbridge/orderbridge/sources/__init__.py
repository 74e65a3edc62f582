"""Webhook source presets: one module per storefront platform or signature scheme (see base.py)."""

from orderbridge.sources.base import Source, SourceSettings
from orderbridge.sources.registry import SOURCES, source_for

__all__ = ["SOURCES", "Source", "SourceSettings", "source_for"]
