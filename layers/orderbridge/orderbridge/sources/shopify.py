"""Shopify: `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body), `X-Shopify-Topic`,
the REST Admin API order object as the body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import Field

from orderbridge.sources.base import Source, SourceSettings, Topic, header

logger = Logger(child=True)

DEFAULT_TOPICS = ["orders/create"]


class ShopifySettings(SourceSettings):
    scheme: Literal["shopify"]
    payload: Literal["shopify", "canonical"] = "shopify"
    topics: list[Topic] = Field(
        default_factory=lambda: list(DEFAULT_TOPICS),
        description="The `X-Shopify-Topic` values that mean a new order; others are answered 200 "
        "ignored. The topic header is not signed, so a delivery whose body is not an order of these "
        "topics is never made one by its header.",
    )


def shopify_order(headers: Mapping[str, str], payload: Any, topics: Sequence[str]) -> dict[str, Any] | None:
    """A Shopify-shaped delivery's order, or None for another topic or a draft-order body."""
    from orderbridge.intake import mapping

    topic = header(headers, "x-shopify-topic")
    if topic not in topics:
        logger.info("webhook topic ignored", extra={"topic": topic})
        return None
    if mapping.is_draft_order(payload):  # the topic header is not signed; the body is
        logger.warning("draft order body ignored", extra={"topic": topic})
        return None
    return mapping.from_shopify(payload)


class ShopifySource(Source):
    scheme = "shopify"
    settings_model = ShopifySettings

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        from orderbridge.intake import signatures

        return signatures.verify_shopify(body, headers, secrets)

    def order(self, headers: Mapping[str, str], payload: Any) -> dict[str, Any] | None:
        from orderbridge.sources.payloads import order_of

        return order_of(self.settings.payload, headers, payload, self.settings.topics)

    def skip_reason(self, payload: Any) -> tuple[str, str] | None:
        from orderbridge.intake import mapping

        return mapping.skip_reason(payload) if self.settings.payload == "shopify" else None
