"""`EventCodec`: an order event as a queue message body, offloaded to S3 above a threshold."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orderbridge.exceptions import OrderbridgeError
from orderbridge.models.event import OrderEvent, TrackingId

#: SQS's limit is 256 KiB per message (attributes included): stay well under it.
DEFAULT_THRESHOLD_BYTES = 200 * 1024
PREFIX = "events/"


class PayloadError(OrderbridgeError):
    """An offloaded event cannot be stored or read (S3 unreachable, the object gone)."""


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(pattern=r"^events/[0-9a-f]{64}\.json$")


class EventPointer(BaseModel):
    """The queue message for an event stored in S3 (`kind` tells it from an `OrderEvent`)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["order_event_pointer"] = "order_event_pointer"
    schema_version: Literal["1"] = "1"
    tracking_id: TrackingId | None = None
    source: str
    route: str
    s3: _S3Object


class EventCodec:
    """Encodes events for the order queue and decodes queue bodies back into events.

    `s3_client` and `bucket` may be None where no bucket is configured: an event over the
    threshold then raises PayloadError instead of being sent and refused by SQS.
    """

    def __init__(
        self, *, s3_client: Any = None, bucket: str | None = None, threshold: int = DEFAULT_THRESHOLD_BYTES
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.threshold = threshold

    def encode(self, event: OrderEvent) -> str:
        """The message body: the event itself, or a pointer to it in S3 when it is too large.

        The S3 key is the SHA-256 of the event's JSON, so a retry writes the same object."""
        body = event.model_dump_json(exclude_none=True)
        data = body.encode()
        if len(data) <= self.threshold:
            return body
        if self.s3 is None or not self.bucket:
            raise PayloadError(f"the event is {len(data)} bytes and no payload bucket is configured")
        key = f"{PREFIX}{hashlib.sha256(data).hexdigest()}.json"
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        except Exception as exc:
            raise PayloadError(f"cannot store the event in s3://{self.bucket}/{key}") from exc
        pointer = EventPointer(
            tracking_id=event.tracking_id,
            source=event.source,
            route=event.route,
            s3={"bucket": self.bucket, "key": key},
        )
        return pointer.model_dump_json(exclude_none=True)

    def decode(self, body: str) -> OrderEvent:
        """An event from a message body. Raises ValidationError/ValueError for a malformed body,
        PayloadError when an offloaded event cannot be read (retryable)."""
        if '"order_event_pointer"' not in body[:200]:
            return OrderEvent.model_validate_json(body)
        pointer = EventPointer.model_validate_json(body)
        if self.s3 is None:
            raise PayloadError("an offloaded event arrived and no S3 client is configured")
        try:
            data = self.s3.get_object(Bucket=pointer.s3.bucket, Key=pointer.s3.key)["Body"].read()
        except Exception as exc:
            raise PayloadError(f"cannot read s3://{pointer.s3.bucket}/{pointer.s3.key}") from exc
        return OrderEvent.model_validate_json(data)
