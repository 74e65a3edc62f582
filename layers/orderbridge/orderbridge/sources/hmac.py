"""Any sender that signs with an HMAC, configured without code: the header, sha256 or sha512,
hex or base64, an optional prefix (`sha256=`), an optional signed timestamp header (then the
signed content is `<timestamp><timestamp_separator><raw body>`, checked against
WEBHOOK_TOLERANCE_SECONDS) and an optional event id header."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from orderbridge.sources.base import HeaderName, PayloadSettings
from orderbridge.sources.standard import PayloadSource


class HmacSettings(PayloadSettings):
    scheme: Literal["hmac"]
    signature_header: HeaderName = Field(
        description="The header carrying the signature, e.g. X-Hub-Signature-256."
    )
    algorithm: Literal["sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: Annotated[str, StringConstraints(max_length=32, pattern=r"^[\x21-\x7e]*$")] = Field(
        default="", description="Before each signature, e.g. `sha256=`."
    )
    timestamp_header: HeaderName | None = Field(
        default=None, description="A header with the unix time the sender signed with the body."
    )
    timestamp_separator: Annotated[str, StringConstraints(max_length=8)] = Field(
        default=".", description="Between the timestamp and the body in the signed content."
    )
    event_id_header: HeaderName | None = Field(
        default=None, description="A header naming the delivery (used only when the order has no id)."
    )


class HmacSource(PayloadSource):
    scheme = "hmac"
    settings_model = HmacSettings

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, tolerance: int
    ) -> str:
        from orderbridge.intake import signatures

        s = self.settings
        return signatures.verify_hmac(
            body,
            headers,
            secrets,
            header=s.signature_header,
            algorithm=s.algorithm,
            encoding=s.encoding,
            prefix=s.prefix,
            timestamp_header=s.timestamp_header,
            separator=s.timestamp_separator,
            tolerance=tolerance,
            event_id_header=s.event_id_header,
        )
