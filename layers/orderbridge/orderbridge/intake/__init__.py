"""The intake: storefront forms and signed webhooks in, canonical order events on the queue."""

from orderbridge.intake.service import Accepted, IntakeService

__all__ = ["Accepted", "IntakeService"]
