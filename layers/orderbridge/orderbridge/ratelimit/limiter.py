"""A shared rate limiter: GCRA (the generic cell rate algorithm) on one DynamoDB item per account.

Why GCRA in DynamoDB: the dispatcher scales out (up to the event source mapping's maximum
concurrency), so a per-process limiter would multiply the provider's limit by the number of
instances. GCRA keeps a single number per account, the theoretical arrival time (TAT) of the
next request; each call reserves the next slot with one optimistic conditional write, so the
calls of all instances are spaced `per_seconds / limit` apart (plus a small burst), never
clumped at a window's start. A caller whose slot is near waits for it; one whose slot is far
gives the record back to the queue instead of sleeping in Lambda.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import ClientError

from orderbridge import clients


class RateLimiter(Protocol):
    def reserve(self, key: str, *, limit: int, per_seconds: float, burst: int, max_wait: float) -> float:
        """Seconds until the caller may send. If > max_wait, nothing was reserved."""
        ...

    def try_acquire(self, key: str, *, limit: int, per_seconds: float, burst: int = 1) -> float:
        """0 when a slot was taken now; else seconds until one frees (nothing taken)."""
        ...


class DynamoDBRateLimiter:
    """GCRA with the TAT stored in a DynamoDB table keyed by `bucket`."""

    def __init__(
        self,
        *,
        table_name: str,
        dynamodb_client: Any = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 8,
    ) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client or clients.client("dynamodb")
        self._clock = clock
        self._max_attempts = max_attempts

    def reserve(
        self, key: str, *, limit: int, per_seconds: float, burst: int = 1, max_wait: float = 5.0
    ) -> float:
        interval = per_seconds / limit
        tolerance = interval * max(0, burst - 1)
        for _ in range(self._max_attempts):
            item = self._ddb.get_item(
                TableName=self.table_name, Key={"bucket": {"S": key}}, ConsistentRead=True
            ).get("Item")
            old_tat = float(item["tat"]["N"]) if item else None
            now = self._clock()
            tat = max(old_tat or 0.0, now)
            wait = max(0.0, tat - tolerance - now)
            if wait > max_wait:
                return wait
            condition = "attribute_not_exists(#b)" if old_tat is None else "tat = :old"
            values: dict[str, Any] = {
                ":tat": {"N": repr(tat + interval)},
                ":exp": {"N": str(int(now + per_seconds * 10 + 3600))},
            }
            if old_tat is not None:
                values[":old"] = item["tat"]  # type: ignore[index]
            try:
                self._ddb.update_item(
                    TableName=self.table_name,
                    Key={"bucket": {"S": key}},
                    UpdateExpression="SET tat = :tat, expires_at = :exp",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    **({"ExpressionAttributeNames": {"#b": "bucket"}} if old_tat is None else {}),
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue  # another instance took a slot first: read again
                raise
            return wait
        return interval * burst  # heavy contention: come back a little later

    def try_acquire(self, key: str, *, limit: int, per_seconds: float, burst: int = 1) -> float:
        """Take a slot now or answer how long until one frees; never waits, no read first.

        For the intake, where a post either goes ahead or gets a 429 at once: one conditional
        write when the bucket is idle (the common case), two when it is busy, none of them a
        read, and no retry loop, because the busy-case increment is computed by DynamoDB.
        """
        interval = per_seconds / limit
        tolerance = interval * max(0, burst - 1)
        now = self._clock()
        expires = {"N": str(int(now + per_seconds * 10 + 3600))}
        try:  # idle or new bucket: the next slot starts from now
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"bucket": {"S": key}},
                UpdateExpression="SET tat = :next, expires_at = :exp",
                ConditionExpression="attribute_not_exists(tat) OR tat <= :now",
                ExpressionAttributeValues={
                    ":next": {"N": repr(now + interval)},
                    ":now": {"N": repr(now)},
                    ":exp": expires,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return 0.0
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old_tat = float(exc.response["Item"]["tat"]["N"])
        if old_tat - tolerance - now > 0:
            return old_tat - tolerance - now
        try:  # busy but within the burst: push the arrival time on by one interval
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"bucket": {"S": key}},
                UpdateExpression="SET tat = tat + :interval, expires_at = :exp",
                ConditionExpression="tat <= :latest",
                ExpressionAttributeValues={
                    ":interval": {"N": repr(interval)},
                    ":latest": {"N": repr(now + tolerance)},
                    ":exp": expires,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return 0.0
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return max(interval, float(exc.response["Item"]["tat"]["N"]) - tolerance - now)
