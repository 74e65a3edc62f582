"""A shared rate limiter: GCRA (the generic cell rate algorithm) on one DynamoDB item per account.

Why GCRA in DynamoDB: the dispatcher scales out (up to the event source mapping's maximum
concurrency), so a per-process limiter would multiply the provider's limit by the number of
instances. GCRA keeps a single number per account, the theoretical arrival time (TAT) of the
next request, so the calls of all instances are spaced `per_seconds / limit` apart (plus a small
burst), never clumped at a window's start. A caller whose slot is near waits for it; one whose
slot is far gives the record back to the queue instead of sleeping in Lambda.

Why no read first: a slot is taken by a conditional write whose new TAT DynamoDB computes itself
(`tat + interval`), so concurrent callers each get a distinct slot without a read-modify-write
race, retries or a lost update: one write when the bucket is idle, two when it is busy.
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
        self, *, table_name: str, dynamodb_client: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client or clients.client("dynamodb")
        self._clock = clock

    def reserve(
        self, key: str, *, limit: int, per_seconds: float, burst: int = 1, max_wait: float = 5.0
    ) -> float:
        interval = per_seconds / limit
        tolerance = interval * max(0, burst - 1)
        now = self._clock()
        expires = {"N": str(int(now + per_seconds * 10 + 3600))}
        try:  # idle or new bucket: the next slot counts from now (idle time banks no extra burst)
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
            wait = _tat_on_condition_failure(exc) - tolerance - now
        if wait > max_wait:
            return wait
        try:  # busy: take the slot after the last one reserved, if it is within max_wait
            got = self._ddb.update_item(
                TableName=self.table_name,
                Key={"bucket": {"S": key}},
                UpdateExpression="SET tat = tat + :interval, expires_at = :exp",
                ConditionExpression="tat <= :latest",
                ExpressionAttributeValues={
                    ":interval": {"N": repr(interval)},
                    ":latest": {"N": repr(now + tolerance + max_wait)},
                    ":exp": expires,
                },
                ReturnValues="UPDATED_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:  # others took the slots within reach meanwhile
            return _tat_on_condition_failure(exc) - tolerance - now
        return max(0.0, float(got["Attributes"]["tat"]["N"]) - tolerance - now)

    def try_acquire(self, key: str, *, limit: int, per_seconds: float, burst: int = 1) -> float:
        """For the intake, where a post goes ahead or gets a 429 at once: `reserve` with no wait."""
        return self.reserve(key, limit=limit, per_seconds=per_seconds, burst=burst, max_wait=0.0)


def _tat_on_condition_failure(exc: ClientError) -> float:
    """The bucket's TAT from a failed conditional write (re-raises any other error)."""
    if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
        raise exc
    return float(exc.response["Item"]["tat"]["N"])
