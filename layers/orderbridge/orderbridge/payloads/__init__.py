"""Order events on the queue, whatever their size.

An SQS message holds at most 256 KiB; a real order (a Shopify order with hundreds of lines) can
be larger. `EventCodec.encode` puts such an event in S3 (the stack's event payload bucket, under
`events/`) and the queue carries a small pointer to it; `decode` reads either form. The same
codec serves the intake, the importer and the dispatcher, so every way in gets the same limit.
"""

from orderbridge.payloads.codec import EventCodec, EventPointer, PayloadError

__all__ = ["EventCodec", "EventPointer", "PayloadError"]
