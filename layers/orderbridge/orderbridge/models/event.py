"""The queue message: what the intake enqueues and what other systems may put on the queue.

Its JSON Schema (`schemas/order-event.schema.json`) is generated from this model.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderbridge.models.order import CanonicalOrder

TrackingId = Annotated[str, StringConstraints(pattern=r"^ob_[0-9a-f]{32}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]

_TRACKING_NAMESPACE = uuid.UUID("5b0f7c1e-2d8a-4c1f-9a53-0f1d4e3c2b7a")


def new_tracking_id() -> str:
    """A random, unguessable tracking id: the status endpoint answers to whoever holds one."""
    return f"ob_{uuid.uuid4().hex}"


def derived_tracking_id(source: str, external_order_id: str) -> str:
    """A stable tracking id for queue events that arrive without one (same input, same id)."""
    name = "\x1f".join((source, external_order_id))
    return f"ob_{uuid.uuid5(_TRACKING_NAMESPACE, name).hex}"


class OrderEvent(BaseModel):
    """An order on its way to the dispatcher."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1"] = "1"
    tracking_id: TrackingId | None = Field(
        default=None,
        description="Set by the intake. Other systems may omit it when the order has an "
        "external_order_id; the dispatcher then derives a stable one from source and that id.",
    )
    source: Name = Field(description="Which system the order came from (a form, webhook source, feed).")
    route: Name = Field(description="Which configured route decides the order's destinations.")
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    order: CanonicalOrder

    def resolved_tracking_id(self) -> str:
        if self.tracking_id:
            return self.tracking_id
        if self.order.external_order_id:
            return derived_tracking_id(self.source, self.order.external_order_id)
        raise ValueError("an event without tracking_id needs order.external_order_id")
