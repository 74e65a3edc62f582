"""Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`): standardwebhooks.com."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from orderbridge.sources.base import PayloadSettings, Source


class StandardSettings(PayloadSettings):
    scheme: Literal["standard"]


class PayloadSource(Source):
    """A scheme whose payload format is a setting (`payload`)."""

    def order(self, headers: Mapping[str, str], payload: Any) -> dict[str, Any] | None:
        from orderbridge.sources.payloads import order_of

        return order_of(self.settings.payload, headers, payload, self.settings.topics)

    def skip_reason(self, payload: Any) -> tuple[str, str] | None:
        from orderbridge.sources.payloads import skip_reason_of

        return skip_reason_of(self.settings.payload, payload)


class StandardSource(PayloadSource):
    scheme = "standard"
    settings_model = StandardSettings

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        from orderbridge.intake import signatures

        return signatures.verify_standard(body, headers, secrets, tolerance=tolerance)
