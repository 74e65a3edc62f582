"""The queue message: what the intake enqueues and what other systems may put on the queue.

Its JSON Schema (`schemas/order-event.schema.json`) is generated from this model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderbridge.identity import OrderIdentity, TrackingIds
from orderbridge.models.names import Name
from orderbridge.models.order import CanonicalOrder

TrackingId = Annotated[str, StringConstraints(pattern=r"^ob_[0-9a-f]{32}$")]


class OrderEvent(BaseModel):
    """An order on its way to the dispatcher."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1"] = "1"
    tracking_id: TrackingId | None = Field(
        default=None,
        description="Set by the intake. Other systems omit it and give order.external_order_id: the "
        "dispatcher then derives the tracking id from the shop and that id (a keyed hash).",
    )
    source: Name = Field(description="Which system the order came from (a form, webhook source, feed).")
    shop: Name | None = Field(
        default=None,
        description="The store the order was placed in (default: `source`). Sources that name the "
        "same shop (its webhook and its feed) name the same order by its external_order_id.",
    )
    route: Name = Field(description="Which configured route decides the order's destinations.")
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    order: CanonicalOrder

    def identity(self) -> OrderIdentity:
        """The order's identity at its origin: its shop and the shop's order id."""
        if not self.order.external_order_id:
            raise ValueError("an event without tracking_id needs order.external_order_id")
        return OrderIdentity.of(
            shop=self.shop or self.source, source=self.source, external_order_id=self.order.external_order_id
        )

    def resolved_tracking_id(self, ids: TrackingIds) -> str:
        """`tracking_id`, else the one derived from the order's identity (ValueError if none)."""
        return self.tracking_id or ids.tracking_id(self.identity())
