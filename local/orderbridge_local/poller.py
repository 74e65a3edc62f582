"""A local SQS event source mapping: polls the queue and feeds the real handler batches.

Like Lambda's: up to `batch_size` records per invocation, records named in
`batchItemFailures` stay on the queue (their visibility timeout decides when they come back;
the handler may shorten or lengthen it), the rest are deleted, and a handler crash returns the
whole batch. SQS itself (moto's) counts receives and redrives to the dead-letter queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from orderbridge_local.lambda_runtime import LocalContext, invocation

logger = Logger(service="orderbridge-local", child=False)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def to_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


class QueuePoller:
    """Runs `workers` polling threads, each acting as one concurrent Lambda instance.

    Each worker gets its own handler from `handler_factory` (a fresh import of the function
    module, like a fresh execution environment), so module-level state is never shared between
    concurrent invocations, exactly as in Lambda.
    """

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        function_name: str,
        handler_factory: Callable[[], Handler] | None = None,
        batch_size: int = 10,
        workers: int = 1,
        timeout_seconds: float = 60.0,
        wait_seconds: int = 1,
        idle_sleep: float = 0.05,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.timeout_seconds = timeout_seconds
        # Long polling (`wait_seconds` > 0) is cheaper; a process killed during a long poll leaves
        # moto to hand the next message to the dead poller (hidden for the visibility timeout, one
        # receive counted), which Lambda's event source mapping, living apart from the function,
        # never does. The functions process (orderbridge_local.functions) therefore polls short.
        self.wait_seconds = wait_seconds
        self.idle_sleep = idle_sleep
        self.invocations = 0
        self.records_seen = 0
        self._stop = threading.Event()
        self._handler_factory = handler_factory
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"poller-{i}", daemon=True)
            for i in range(workers)
        ]
        self._count_lock = threading.Lock()

    def start(self) -> QueuePoller:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=5)

    def poll_once(self, wait_seconds: int = 0, handler: Handler | None = None) -> int:
        """Receive one batch and invoke the handler with it; returns the number of records."""
        handler = handler or self.handler
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [to_record(m, self.queue_arn) for m in messages]}
        with self._count_lock:
            self.invocations += 1
            self.records_seen += len(messages)
        try:
            context = LocalContext(self.function_name, timeout_seconds=self.timeout_seconds)
            with invocation(context):
                result = handler(event, context)
        except Exception:
            logger.exception("handler crashed; the whole batch returns to the queue")
            return len(messages)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(messages)

    def new_handler(self) -> Handler:
        """A handler of its own, as a new execution environment would have."""
        return self._handler_factory() if self._handler_factory else self.handler

    def _loop(self, index: int) -> None:
        handler = self.handler if index == 0 else self.new_handler()
        while not self._stop.is_set():
            try:
                if self.poll_once(wait_seconds=self.wait_seconds, handler=handler) == 0:
                    time.sleep(self.idle_sleep)
            except Exception:
                logger.exception("poller error")
                time.sleep(0.5)
