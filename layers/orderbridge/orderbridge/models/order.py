"""The canonical order: the one shape every way in produces and every provider adapter reads.

Limits here are the tightest common denominators of the providers' own limits, so an order that
validates here can be expressed by any adapter; provider-specific limits live in the adapters.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
CountryCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Z]{2}$")]
CurrencyCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1000000"), decimal_places=2)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetaValue = Annotated[str, StringConstraints(max_length=500)]

MAX_LINES = 100
MAX_QUANTITY = 10000
MAX_METADATA_KEYS = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Strict):
    """A postal address; the fields every provider needs when it takes one."""

    first_name: ShortText
    last_name: ShortText
    company: Text | None = None
    address1: Text
    address2: Text | None = None
    city: ShortText
    province: ShortText | None = None
    zip: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=20)]
    country: CountryCode
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


class Buyer(_Strict):
    """Who is buying. PII: masked in logs, not stored in the outcome table."""

    email: EmailStr
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    ip_address: Annotated[str, StringConstraints(max_length=39)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None


class OrderLine(_Strict):
    """One line: a SKU the route's catalog maps to provider ids, or a custom product by name."""

    sku: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = None
    name: Text | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
    unit_price: Money | None = None
    options: dict[ShortText, Annotated[str, StringConstraints(max_length=255)]] = Field(
        default_factory=dict, max_length=20
    )

    @model_validator(mode="after")
    def _sku_or_name(self) -> OrderLine:
        if self.sku is None and self.name is None:
            raise ValueError("a line needs a sku or a name")
        return self


class CanonicalOrder(_Strict):
    """An order as orderbridge understands it, independent of any storefront or provider."""

    external_order_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] | None
    ) = Field(default=None, description="The order's id in the system it came from.")
    currency: CurrencyCode = "USD"
    buyer: Buyer
    billing_address: Address | None = None
    shipping_address: Address | None = None
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)
    coupon: ShortText | None = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    payment_method: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)] | None
    ) = None
    shipping_total: Money | None = None
    total: Money | None = Field(default=None, description="Order total, when the source knows it.")
    placed_at: datetime | None = None
    metadata: dict[MetaKey, MetaValue] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)

    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)
