"""The import state table: a lease and checkpoints per source, processed files, enqueued orders.

Keys (`pk`, `sk`):

* `source#<name>` / `state`: the lease (`lease_owner`, `lease_until` epoch seconds) and the source's
  checkpoints: `files` (in-progress files: offset, line, header, running counts) and `feed`
  (cursor, updated_since watermark). Every checkpoint write is conditional on holding the lease,
  so a run that lost its lease cannot move a checkpoint.
* `source#<name>` / `file#<file id>`: a file that was finished (DONE) or refused (FAILED), with its
  ETag and totals. Listing skips these; a new ETag under the same key is a new file.
* `source#<name>#order#<external order id>` / `order`: the ledger. Written after the order's queue
  message was sent; an order found here (or in the outcome table) is skipped as already known.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_ser = TypeSerializer()
_de = TypeDeserializer()
STATE = "state"
BATCH_GET = 100
BATCH_WRITE = 25


class LeaseLost(Exception):
    """Another run holds the source now: this run must stop without writing checkpoints."""


@dataclass(frozen=True)
class LeaseHeld:
    owner: str
    until: float


def _numbers(value: Any) -> Any:
    """DynamoDB takes Decimal, not float."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(v) for v in value]
    return value


def to_ddb(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_numbers(v)) for k, v in value.items() if v is not None}


def from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: ints where they are whole."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def batch_get(ddb: Any, table: str, keys: Sequence[dict[str, Any]], *, attributes: str) -> list[dict]:
    """Every existing item among `keys` (typed keys), strongly consistent, retrying unprocessed keys."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET):
        request: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + BATCH_GET]), "ConsistentRead": True}
        }
        request[table]["ProjectionExpression"] = attributes
        attempt = 0
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            found += response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
            if request:
                attempt += 1
                time.sleep(min(1.0, 0.05 * 2**attempt) * random.random())  # noqa: S311
    return found


def batch_put(ddb: Any, table: str, items: Sequence[dict[str, Any]]) -> None:
    """Unconditional puts in batches of 25, retrying unprocessed items."""
    for start in range(0, len(items), BATCH_WRITE):
        request: dict[str, Any] = {
            table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE]]
        }
        attempt = 0
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if request:
                attempt += 1
                time.sleep(min(1.0, 0.05 * 2**attempt) * random.random())  # noqa: S311


def source_key(source: str, sk: str = STATE) -> dict[str, Any]:
    return {"pk": {"S": f"source#{source}"}, "sk": {"S": sk}}


def ledger_key(source: str, external_order_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"source#{source}#order#{external_order_id}"}, "sk": {"S": "order"}}


class ImportStateStore:
    """Leases, checkpoints, file records and the ledger of enqueued orders."""

    def __init__(self, *, table_name: str, dynamodb_client: Any, ttl_days: int = 400) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client
        self._ttl = timedelta(days=ttl_days)

    # --- lease ------------------------------------------------------------------------------------

    def acquire(self, source: str, owner: str, seconds: float) -> dict[str, Any] | LeaseHeld:
        """Take the source's lease; returns its state (checkpoints), or who holds it."""
        now = time.time()
        try:
            response = self._ddb.update_item(
                TableName=self.table_name,
                Key=source_key(source),
                UpdateExpression=(
                    "SET lease_owner = :me, lease_until = :until, lease_taken_at = :at, "
                    "files = if_not_exists(files, :empty), feed = if_not_exists(feed, :empty)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :me"
                ),
                ExpressionAttributeValues=to_ddb(
                    {
                        ":me": owner,
                        ":until": round(now + seconds, 3),
                        ":now": round(now, 3),
                        ":at": datetime.now(UTC).isoformat(),
                        ":empty": {},
                    }
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            current = self.read(source)
            return LeaseHeld(
                owner=str(current.get("lease_owner", "?")), until=float(current.get("lease_until", 0))
            )
        return _plain(from_ddb(response["Attributes"]))

    def release(self, source: str, owner: str) -> None:
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=source_key(source),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues=to_ddb({":me": owner}),
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def read(self, source: str) -> dict[str, Any]:
        item = self._ddb.get_item(TableName=self.table_name, Key=source_key(source), ConsistentRead=True).get(
            "Item"
        )
        return _plain(from_ddb(item)) if item else {}

    def checkpoint(
        self,
        source: str,
        owner: str,
        *,
        lease_seconds: float,
        file: tuple[str, dict[str, Any] | None] | None = None,
        feed: dict[str, Any] | None = None,
        last_run: dict[str, Any] | None = None,
    ) -> None:
        """Move a checkpoint (and renew the lease) if, and only if, `owner` still holds the lease.

        `file=(file_id, cp)` sets that file's checkpoint; `cp=None` removes it (the file is done).
        """
        now = time.time()
        sets = ["lease_until = :until"]
        removes: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {":me": owner, ":until": round(now + lease_seconds, 3)}
        if file is not None:
            file_id, cp = file
            names["#f"] = file_id
            if cp is None:
                removes.append("files.#f")
            else:
                sets.append("files.#f = :cp")
                values[":cp"] = cp
        if feed is not None:
            sets.append("feed = :feed")
            values[":feed"] = feed
        if last_run is not None:
            sets.append("last_run = :last")
            values[":last"] = last_run
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        kwargs: dict[str, Any] = {}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=source_key(source),
                UpdateExpression=expression,
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues=to_ddb(values),
                **kwargs,
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise LeaseLost(f"the lease on source {source!r} was taken over") from exc
            raise

    # --- files ------------------------------------------------------------------------------------

    def finished_files(self, source: str, file_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """file id -> record, for the files among `file_ids` that were finished or refused before."""
        keys = [source_key(source, f"file#{f}") for f in file_ids]
        items = batch_get(self._ddb, self.table_name, keys, attributes="sk, etag, file_status")
        return {item["sk"]["S"][len("file#") :]: _plain(from_ddb(item)) for item in items}

    def record_file(self, source: str, file_id: str, record: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        item = {
            "pk": f"source#{source}",
            "sk": f"file#{file_id}",
            "recorded_at": now.isoformat(),
            "expires_at": int((now + self._ttl).timestamp()),
            **record,
        }
        self._ddb.put_item(TableName=self.table_name, Item=to_ddb(item))

    def file_record(self, source: str, file_id: str) -> dict[str, Any] | None:
        item = self._ddb.get_item(
            TableName=self.table_name, Key=source_key(source, f"file#{file_id}"), ConsistentRead=True
        ).get("Item")
        return _plain(from_ddb(item)) if item else None

    # --- the ledger -------------------------------------------------------------------------------

    def known(self, source: str, external_order_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(external_order_ids))
        prefix = f"source#{source}#order#"
        items = batch_get(self._ddb, self.table_name, [ledger_key(source, i) for i in ids], attributes="pk")
        return {item["pk"]["S"][len(prefix) :] for item in items}

    def record_enqueued(
        self, source: str, orders: Sequence[tuple[str, str]], *, origin: str, run_id: str
    ) -> None:
        """Ledger entries for sent orders: (external order id, tracking id)."""
        now = datetime.now(UTC)
        common = {
            "sk": "order",
            "origin": origin[:1024],
            "run_id": run_id,
            "enqueued_at": now.isoformat(),
            "expires_at": int((now + self._ttl).timestamp()),
        }
        items = [
            to_ddb(
                {"pk": f"source#{source}#order#{ext}", "tracking_id": tid, "external_order_id": ext, **common}
            )
            for ext, tid in orders
        ]
        batch_put(self._ddb, self.table_name, items)
