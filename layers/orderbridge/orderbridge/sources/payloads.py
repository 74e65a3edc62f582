"""Payload formats a signature scheme may carry (`payload` of a standard, stripe or hmac source)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)


def canonical_order(payload: Any) -> dict[str, Any] | None:
    """`{"type": "order.created", "data": <CanonicalOrder>}`; another event type is ignored."""
    from orderbridge.intake import mapping

    if not mapping.is_order_event(payload):
        logger.info("webhook event type ignored")
        return None
    return mapping.from_canonical_event(payload)


def order_of(
    payload_format: str, headers: Mapping[str, str], payload: Any, topics: Sequence[str] | None
) -> dict[str, Any] | None:
    if payload_format == "shopify":
        from orderbridge.sources.shopify import DEFAULT_TOPICS, shopify_order

        return shopify_order(headers, payload, DEFAULT_TOPICS if topics is None else topics)
    if payload_format == "woocommerce":
        from orderbridge.sources.woocommerce import DEFAULT_TOPICS as WC_TOPICS
        from orderbridge.sources.woocommerce import woocommerce_order

        return woocommerce_order(headers, payload, WC_TOPICS if topics is None else topics)
    return canonical_order(payload)


def skip_reason_of(payload_format: str, payload: Any) -> tuple[str, str] | None:
    from orderbridge.intake import mapping

    if payload_format == "shopify":
        return mapping.skip_reason(payload)
    if payload_format == "woocommerce":
        from orderbridge.sources.woocommerce import skip_reason

        return skip_reason(payload)
    return None
