"""Known-order checks and SQS batches: the hand-over from an import to the ordinary pipeline.

An imported order goes on the order queue as any other system's event would: no tracking id,
`source` = the import source, `shop` = its shop, `order.external_order_id` = the shop's order
number. The dispatcher derives the tracking id from the shop and that number (a keyed hash:
`orderbridge.identity`), so a re-import, or the same order through the shop's webhook, maps to the
same deliveries and the dispatcher's claim in the outcome table makes a second copy a no-op.

Before sending, an order is skipped as already known when the ledger (import state table) or the
outcome table has it. After sending, it is written to the ledger; a crash in between re-sends it
on the next run (a duplicate message, which the dispatcher's claim absorbs): never a lost order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger

from orderbridge.identity import OrderIdentity, TrackingIds
from orderbridge.imports.state import ImportStateStore, batch_get
from orderbridge.models.event import OrderEvent
from orderbridge.models.order import CanonicalOrder
from orderbridge.payloads import EventCodec

logger = Logger(child=True)

SQS_BATCH = 10
SQS_BATCH_BYTES = 240 * 1024  # under SQS's 256 KiB per batch, with room for the envelope
_SEND_ATTEMPTS = 4


class EnqueueError(Exception):
    """Some orders could not be put on the queue; the run stops before its checkpoint moves."""


class OrderSink:
    """Puts new orders on the order queue, skipping those already known."""

    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        dynamodb_client: Any,
        outcome_table: str,
        state: ImportStateStore,
        tracking_ids: TrackingIds,
        codec: EventCodec | None = None,
        concurrency: int = 4,
    ) -> None:
        self.ids = tracking_ids
        self.codec = codec or EventCodec()
        self.concurrency = concurrency  # SQS batches in flight at once (boto3 clients are thread-safe)
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.ddb = dynamodb_client
        self.outcome_table = outcome_table
        self.state = state

    def tracking_id(self, shop: str, external_order_id: str) -> str:
        """The id the dispatcher derives for this shop's order (the same as its webhook's)."""
        return self.ids.tracking_id(
            OrderIdentity.of(shop=shop, source=shop, external_order_id=external_order_id)
        )

    def known(
        self,
        source: str,
        destinations: Sequence[str],
        external_order_ids: Sequence[str],
        *,
        shop: str | None = None,
    ) -> set[str]:
        """Orders of `source` already enqueued (ledger) or already known to the outcome table
        (by this source or any other way in of the same shop)."""
        if not external_order_ids:
            return set()
        known = self.state.known(source, external_order_ids)
        rest = [e for e in external_order_ids if e not in known]
        if rest and destinations:
            by_tracking = {self.tracking_id(shop or source, e): e for e in rest}
            keys = [
                {"tracking_id": {"S": t}, "destination": {"S": d}} for t in by_tracking for d in destinations
            ]
            for item in batch_get(self.ddb, self.outcome_table, keys, attributes="tracking_id"):
                known.add(by_tracking[item["tracking_id"]["S"]])
        return known

    def send(
        self,
        *,
        source: str,
        route: str,
        orders: Sequence[CanonicalOrder],
        origin: str,
        run_id: str,
        shop: str | None = None,
    ) -> None:
        """Send every order (batches of 10, a few batches at a time), then record them in the ledger."""
        bodies = [  # an order too large for the queue goes by way of S3
            self.codec.encode(OrderEvent(source=source, shop=shop, route=route, order=order))
            for order in orders
        ]
        batches = _batches(bodies)
        sent: list[tuple[str, str]] = []
        errors: list[Exception] = []

        def done(batch: list[tuple[int, str]]) -> None:
            for i, _ in batch:
                ext = orders[i].external_order_id or ""
                sent.append((ext, self.tracking_id(shop or source, ext)))

        try:
            if self.concurrency <= 1 or len(batches) == 1:
                for batch in batches:
                    self._send_batch([(str(i), body) for i, body in batch])
                    done(batch)
            else:
                with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
                    futures = [
                        (pool.submit(self._send_batch, [(str(i), body) for i, body in batch]), batch)
                        for batch in batches
                    ]
                    for future, batch in futures:
                        try:
                            future.result()
                        except Exception as exc:  # the others may have gone: record those first
                            errors.append(exc)
                        else:
                            done(batch)
        finally:
            if sent:
                self.state.record_enqueued(source, sent, origin=origin, run_id=run_id)
        if errors:
            raise errors[0]

    def _send_batch(self, entries: list[tuple[str, str]]) -> None:
        pending = {entry_id: body for entry_id, body in entries}
        for attempt in range(_SEND_ATTEMPTS):
            response = self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()],
            )
            failed = response.get("Failed") or []
            if not failed:
                return
            sender_faults = [f for f in failed if f.get("SenderFault")]
            if sender_faults:
                codes = sorted({str(f.get("Code")) for f in sender_faults})
                raise EnqueueError(f"the queue refused {len(sender_faults)} message(s): {', '.join(codes)}")
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
            logger.warning("queue batch partly failed; retrying", extra={"failed": len(pending)})
            time.sleep(min(2.0, 0.1 * 2**attempt) * random.random())  # noqa: S311
        raise EnqueueError(f"{len(pending)} message(s) could not be sent after {_SEND_ATTEMPTS} attempts")


def _batches(bodies: Sequence[str]) -> list[list[tuple[int, str]]]:
    """Batches of at most 10 messages and under SQS's batch size limit."""
    batches: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = 0
    for i, body in enumerate(bodies):
        length = len(body.encode())
        if current and (len(current) == SQS_BATCH or size + length > SQS_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append((i, body))
        size += length
    if current:
        batches.append(current)
    return batches
