"""Turning queued order events into provider orders, exactly once."""

from orderbridge.dispatch.dispatcher import Dispatcher, DispatcherSettings

__all__ = ["Dispatcher", "DispatcherSettings"]
