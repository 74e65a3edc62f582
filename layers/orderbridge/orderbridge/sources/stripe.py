"""Stripe-style: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` in one header."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from orderbridge.sources.base import HeaderName, PayloadSettings
from orderbridge.sources.standard import PayloadSource


class StripeSettings(PayloadSettings):
    scheme: Literal["stripe"]
    signature_header: HeaderName | None = Field(
        default=None, description="The header carrying `t=...,v1=...` (default Stripe-Signature)."
    )


class StripeSource(PayloadSource):
    scheme = "stripe"
    settings_model = StripeSettings

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        from orderbridge.intake import signatures

        return signatures.verify_stripe(
            body,
            headers,
            secrets,
            tolerance=tolerance,
            header=self.settings.signature_header or signatures.STRIPE_HEADER_DEFAULT,
        )

    def event_id(self, payload: Any, event_id: str) -> str:
        # Stripe-style events carry their id in the signed body
        if isinstance(payload, dict) and isinstance(payload.get("id"), str):
            return payload["id"][:128]
        return event_id
