"""What may go into logs: buyer data is erased before anything order-shaped is logged."""

from orderbridge.observability.masking import MASK, mask_pii

__all__ = ["MASK", "mask_pii"]
