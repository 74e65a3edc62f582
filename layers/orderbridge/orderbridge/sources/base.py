"""The interface every webhook source preset implements, and the settings all of them share.

A source is one module (`orderbridge.sources.<name>`) holding its settings model (the
configuration's `webhooks.<name>` entry, told apart by `scheme`) and its `Source` subclass:
the signature check, the activation ping (if the platform has one), topic handling, the mapping
of its payload to the canonical order, and what names the order at its origin (the shop and the
shop's order id, `orderbridge.identity`). `orderbridge.sources.registry` lists them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from orderbridge.models.names import Name, Shop

Topic = Annotated[str, StringConstraints(min_length=1, max_length=100)]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]


class SourceSettings(BaseModel):
    """What every webhook source has; each scheme adds only the settings that apply to it
    (unknown keys are refused at load time, naming the source and the key)."""

    model_config = ConfigDict(extra="forbid")

    scheme: str
    route: Name
    shop: Shop = None
    test_orders: Literal["skip", "send"] = Field(
        default="skip",
        description="Orders the source marks as tests (Shopify `test: true`): `skip` records them as "
        "SKIPPED / TEST_ORDER and sends nothing; `send` treats them as any order (`test_route` may "
        "send them elsewhere).",
    )
    test_route: Name | None = Field(
        default=None, description="With test_orders `send`: the route test orders take (a test destination)."
    )
    secret_id: str = Field(description='Secrets Manager id; JSON {"secrets": [...]} or a plain string.')


class PayloadSettings(SourceSettings):
    """A signature scheme that may carry any payload format (`payload`) and, for Shopify-shaped
    payloads, the `X-Shopify-Topic` values that mean a new order."""

    payload: Literal["canonical", "shopify", "woocommerce"] = "canonical"
    topics: list[Topic] | None = Field(
        default=None,
        description="payload shopify or woocommerce: the topic header values that mean a new order "
        "(default orders/create, order.created); others are answered 200 ignored.",
    )

    @model_validator(mode="after")
    def _topics_need_a_topic_header(self) -> PayloadSettings:
        if self.topics is not None and self.payload == "canonical":
            raise ValueError(
                "topics applies only to payload shopify or woocommerce (a canonical event's `type` decides)"
            )
        return self


class Source(ABC):
    """One storefront platform's way of sending order events. Stateless: one per settings."""

    #: the `scheme` value of its settings
    scheme: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def handshake(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True for the platform's activation ping/verification request, answered 2xx before any
        signature check. It must create nothing. Default: the platform has none."""
        return False

    @abstractmethod
    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        """Check the signature over the raw body; return the sender's event id ("" if none).
        Raises SignatureError (401) or SecretFormatError (our configuration: 503)."""

    def event_id(self, payload: Any, event_id: str) -> str:
        """The event id once the signed body is parsed (a body may carry a better one)."""
        return event_id

    @abstractmethod
    def order(self, headers: Mapping[str, str], payload: Any) -> dict[str, Any] | None:
        """The canonical order (a plain dict) of a signed, parsed delivery; None when this delivery
        is not an order to create (another topic or event type, a draft): answered 200 ignored.
        Raises IntakeRejectedError for content that cannot be taken (recorded FAILED, 202)."""

    def skip_reason(self, payload: Any) -> tuple[str, str] | None:
        """Why a mapped order is not a live order (code, reason): recorded SKIPPED, 202."""
        return None

    def shop(self, headers: Mapping[str, str], source: str) -> str:
        """The shop the order was placed in: `orderbridge.identity.effective_shop` (the one rule)."""
        from orderbridge.identity.shops import effective_shop

        return effective_shop(self.settings, source, headers=headers) or source


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever its case."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
