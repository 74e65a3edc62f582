"""Pydantic models at orderbridge's boundaries: the canonical order, queue events, outcomes, config."""

from orderbridge.models.event import OrderEvent
from orderbridge.models.order import Address, Buyer, CanonicalOrder, OrderLine
from orderbridge.models.outcome import Outcome, OutcomeStatus

__all__ = [
    "Address",
    "Buyer",
    "CanonicalOrder",
    "OrderEvent",
    "OrderLine",
    "Outcome",
    "OutcomeStatus",
]
