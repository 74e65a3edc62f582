"""DynamoDB outcome table access.

Keys: `tracking_id` (hash) + `destination` (range). Indexes: `by-source-ref`
(`source_ref` = source#external_order_id) and `by-status` (`status`, `updated_at`).
Conditional writes make the table the dispatcher's idempotency ledger: a delivery is claimed
(IN_FLIGHT with a lease) before any provider call, and a final status is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from orderbridge import clients
from orderbridge.exceptions import DeliveryRetryableError, OutcomeConflictError, ReviewError
from orderbridge.models.outcome import Outcome, OutcomeStatus

BY_SOURCE_REF_INDEX = "by-source-ref"
BY_STATUS_INDEX = "by-status"

_ser = TypeSerializer()
_de = TypeDeserializer()
# A dead-lettered delivery is reopened when an operator redrives it.
_REOPENABLE = (
    OutcomeStatus.RECEIVED.value,
    OutcomeStatus.FAILED_RETRYABLE.value,
    OutcomeStatus.DEAD_LETTERED.value,
)
_CLOSED = frozenset({OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.NEEDS_REVIEW})
#: What `reopen` (an operator's retry or DLQ redrive) makes retryable again.
_FAILED = (OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.DEAD_LETTERED, OutcomeStatus.NEEDS_REVIEW)


def _now() -> datetime:
    return datetime.now(UTC)


def _to_ddb(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in value.items() if v is not None}


def _from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def source_ref(source: str | None, external_order_id: str | None) -> str | None:
    return f"{source}#{external_order_id}" if source and external_order_id else None


@dataclass(frozen=True)
class Claim:
    """The result of claiming a delivery for an attempt."""

    attempt: int
    prior_status: OutcomeStatus | None
    prior_unknown_result: bool
    final: Outcome | None = None  # set when the delivery was already finished: nothing to do
    lease_until: float = 0.0  # epoch seconds; after it another worker may take the delivery over
    prior_unknown_since: datetime | None = None  # when the create of unknown result was sent

    @property
    def may_exist(self) -> bool:
        """An earlier attempt ended without an answer (timeout, dropped connection, crash)."""
        return self.prior_unknown_result or self.prior_status is OutcomeStatus.IN_FLIGHT

    @property
    def needs_reconcile(self) -> bool:
        """Look before sending: cheap insurance on any retry, required when `may_exist`."""
        return self.may_exist or self.attempt > 1


class OutcomeStore:
    """Reads and writes outcome records."""

    def __init__(self, *, table_name: str, ttl_days: int = 400, dynamodb_client: Any = None) -> None:
        self.table_name = table_name
        self._ttl = timedelta(days=ttl_days)
        self._ddb = dynamodb_client or clients.client("dynamodb")

    # --- writes -------------------------------------------------------------------------------

    def record_received(
        self,
        *,
        tracking_id: str,
        destinations: list[tuple[str, str]],
        source: str,
        route: str,
        external_order_id: str | None,
        content_digests: dict[str, str] | None = None,
    ) -> bool:
        """Write one RECEIVED record per (destination, provider); existing records are kept.

        Returns True if this call created any record (False: the order was already known).
        """
        now = _now()
        created = False
        for destination, provider in destinations:
            item = self._base_item(tracking_id, destination, now) | {
                "status": OutcomeStatus.RECEIVED.value,
                "provider": provider,
                "route": route,
                "source": source,
                "external_order_id": external_order_id,
                "source_ref": source_ref(source, external_order_id),
                "attempts": 0,
                "content_digests": content_digests or None,
                "history": [self._entry(now, OutcomeStatus.RECEIVED, 0)],
            }
            try:
                self._ddb.put_item(
                    TableName=self.table_name,
                    Item=_to_ddb(item),
                    ConditionExpression="attribute_not_exists(tracking_id)",
                )
                created = True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return created

    def claim(
        self,
        *,
        tracking_id: str,
        destination: str,
        provider: str,
        route: str,
        source: str,
        external_order_id: str | None,
        lease_seconds: int,
    ) -> Claim:
        """Mark the delivery IN_FLIGHT for one attempt, or say why it must not be attempted."""
        now = _now()
        values = {
            ":inflight": OutcomeStatus.IN_FLIGHT.value,
            ":received": _REOPENABLE[0],
            ":retryable": _REOPENABLE[1],
            ":dead": _REOPENABLE[2],
            ":now": now.isoformat(),
            ":lease": (now + timedelta(seconds=lease_seconds)).isoformat(),
            ":zero": 0,
            ":one": 1,
            ":provider": provider,
            ":route": route,
            ":source": source,
            ":empty": [],
            ":expires": int((now + self._ttl).timestamp()),
        }
        sets = [
            "#s = :inflight",
            "attempts = if_not_exists(attempts, :zero) + :one",
            "lease_until = :lease",
            "updated_at = :now",
            "created_at = if_not_exists(created_at, :now)",
            "provider = :provider",
            "#r = :route",
            "#src = :source",
            "expires_at = :expires",
            "history = list_append(if_not_exists(history, :empty), :entry)",
        ]
        ref = source_ref(source, external_order_id)
        if ref:
            sets += ["external_order_id = :ext", "source_ref = :ref"]
            values |= {":ext": external_order_id, ":ref": ref}
        try:
            old = self._ddb.update_item(
                TableName=self.table_name,
                Key=_to_ddb({"tracking_id": tracking_id, "destination": destination}),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=(
                    "attribute_not_exists(tracking_id) OR #s IN (:received, :retryable, :dead) "
                    "OR (#s = :inflight AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#s": "status", "#r": "route", "#src": "source"},
                ExpressionAttributeValues=_to_ddb(values)
                | {
                    ":entry": {"L": [{"M": _to_ddb(self._entry(now, OutcomeStatus.IN_FLIGHT, 0, "claimed"))}]}
                },
                ReturnValues="ALL_OLD",
            ).get("Attributes")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            current = self.get_one(tracking_id, destination)
            if current is not None and current.status in _CLOSED:
                return Claim(
                    attempt=current.attempts,
                    prior_status=current.status,
                    prior_unknown_result=current.unknown_result,
                    final=current,
                )
            lease_left = (
                (current.lease_until - now).total_seconds() if current and current.lease_until else None
            )
            raise DeliveryRetryableError(
                f"delivery {tracking_id}/{destination} is in flight in another worker",
                retry_after=max(1.0, lease_left + 1.0) if lease_left is not None else None,
            ) from exc
        prior = _from_ddb(old) if old else {}
        attempt = int(prior.get("attempts", 0)) + 1
        prior_status = OutcomeStatus(prior["status"]) if "status" in prior else None
        since = prior.get("unknown_since")
        if prior_status is OutcomeStatus.IN_FLIGHT:  # that worker died: it may have sent since its claim
            since = prior.get("updated_at")
        return Claim(
            attempt=attempt,
            prior_status=prior_status,
            prior_unknown_result=bool(prior.get("unknown_result", False)),
            lease_until=(now + timedelta(seconds=lease_seconds)).timestamp(),
            prior_unknown_since=datetime.fromisoformat(since) if since else None,
        )

    def finish(
        self,
        *,
        tracking_id: str,
        destination: str,
        attempt: int,
        status: OutcomeStatus,
        http_status: int | None = None,
        provider_order_id: str | None = None,
        provider_reference: str | None = None,
        redirect_url: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        unknown_result: bool = False,
        unknown_since: datetime | None = None,
        note: str | None = None,
    ) -> bool:
        """Record an attempt's result. Returns False if another worker has since taken over.

        `unknown_since` (with `unknown_result`): when the create whose answer never came was sent.
        """
        now = _now()
        fields: dict[str, Any] = {
            "#s": status.value,
            "updated_at": now.isoformat(),
            "http_status": http_status,
            "provider_order_id": provider_order_id,
            "provider_reference": provider_reference,
            "redirect_url": redirect_url,
            "error_code": error_code,
            "error_message": (error_message or "")[:1000] or None,
            "unknown_result": unknown_result,
            "unknown_since": unknown_since.isoformat() if unknown_result and unknown_since else None,
        }
        sets, removes, values = [], ["lease_until"], {}
        if not unknown_result:
            removes.append("unknown_since")
        for i, (name, value) in enumerate(fields.items()):
            if value is None:
                if name in {"error_code", "error_message", "http_status"}:
                    removes.append(name)
                continue
            sets.append(f"{name} = :v{i}")
            values[f":v{i}"] = value
        sets.append("history = list_append(if_not_exists(history, :empty), :entry)")
        entry = self._entry(now, status, attempt, note or error_message, http_status, error_code)
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=_to_ddb({"tracking_id": tracking_id, "destination": destination}),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
                ConditionExpression="#s = :inflight AND attempts = :attempt",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_to_ddb(
                    values
                    | {
                        ":inflight": OutcomeStatus.IN_FLIGHT.value,
                        ":attempt": attempt,
                        ":empty": [],
                    }
                )
                | {":entry": {"L": [{"M": _to_ddb(entry)}]}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_dead_lettered(self, *, tracking_id: str, destination: str, attempt: int, reason: str) -> None:
        """The record ran out of tries and goes to the dead-letter queue."""
        self.finish(
            tracking_id=tracking_id,
            destination=destination,
            attempt=attempt,
            status=OutcomeStatus.DEAD_LETTERED,
            error_code="RETRIES_EXHAUSTED",
            error_message=reason,
        )

    def reopen(
        self, *, tracking_id: str, destination: str | None = None, note: str = "reopened"
    ) -> list[str]:
        """Make failed deliveries retryable again (an operator fixed the cause); returns which."""
        now = _now()
        reopened = []
        for outcome in self.get(tracking_id):
            if destination is not None and outcome.destination != destination:
                continue
            if outcome.status not in _FAILED:
                continue
            try:
                self._ddb.update_item(
                    TableName=self.table_name,
                    Key=_to_ddb({"tracking_id": tracking_id, "destination": outcome.destination}),
                    UpdateExpression=(
                        "SET #s = :retry, updated_at = :now, "
                        "history = list_append(if_not_exists(history, :empty), :entry)"
                    ),
                    ConditionExpression="#s = :was",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues=_to_ddb(
                        {
                            ":retry": OutcomeStatus.FAILED_RETRYABLE.value,
                            ":now": now.isoformat(),
                            ":empty": [],
                            ":was": outcome.status.value,
                        }
                    )
                    | {
                        ":entry": {
                            "L": [
                                {
                                    "M": _to_ddb(
                                        self._entry(
                                            now, OutcomeStatus.FAILED_RETRYABLE, outcome.attempts, note
                                        )
                                    )
                                }
                            ]
                        }
                    },
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue
            reopened.append(outcome.destination)
        return reopened

    def record_skipped(
        self, *, tracking_id: str, source: str, external_order_id: str | None, code: str, reason: str
    ) -> None:
        """An order deliberately not sent (a test order): SKIPPED, with why. Kept if it exists."""
        now = _now()
        item = self._base_item(tracking_id, "-", now) | {
            "status": OutcomeStatus.SKIPPED.value,
            "source": source,
            "external_order_id": external_order_id,
            "source_ref": source_ref(source, external_order_id),
            "attempts": 0,
            "error_code": code,
            "error_message": reason[:1000],
            "history": [self._entry(now, OutcomeStatus.SKIPPED, 0, reason[:200], None, code)],
        }
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item=_to_ddb(item),
                ConditionExpression="attribute_not_exists(tracking_id)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def add_note(self, *, tracking_id: str, destination: str, error_code: str, note: str) -> None:
        """Append a history line without changing the record's status (e.g. an ignored conflict)."""
        now = _now()
        current = self.get_one(tracking_id, destination)
        if current is None:
            return
        entry = self._entry(now, current.status, current.attempts, note, None, error_code)
        self._ddb.update_item(
            TableName=self.table_name,
            Key=_to_ddb({"tracking_id": tracking_id, "destination": destination}),
            UpdateExpression="SET history = list_append(if_not_exists(history, :empty), :entry)",
            ConditionExpression="attribute_exists(tracking_id)",
            ExpressionAttributeValues={":empty": {"L": []}, ":entry": {"L": [{"M": _to_ddb(entry)}]}},
        )

    def resolve_review(
        self,
        *,
        tracking_id: str,
        destination: str,
        created: bool,
        by: str,
        reason: str,
        provider_order_id: str | None = None,
    ) -> Outcome:
        """Record what a person found at the provider for a delivery that may exist.

        `created=True` (with the provider's order id): the delivery becomes SUCCEEDED.
        `created=False`: it becomes FAILED_RETRYABLE with the doubt cleared, so the next delivery
        of its event (a DLQ redrive) sends it without looking first. Only a delivery in doubt can
        be resolved: NEEDS_REVIEW, or DEAD_LETTERED/FAILED_RETRYABLE with an unknown result.
        The history keeps who, when and why. Raises ReviewError when the record is not in doubt,
        OutcomeConflictError when it changed while being resolved.
        """
        current = self.get_one(tracking_id, destination)
        if current is None:
            raise ReviewError(f"no delivery {tracking_id}/{destination}")
        in_doubt = current.status is OutcomeStatus.NEEDS_REVIEW or (
            current.unknown_result
            and current.status in (OutcomeStatus.DEAD_LETTERED, OutcomeStatus.FAILED_RETRYABLE)
        )
        if not in_doubt:
            raise ReviewError(
                f"{tracking_id}/{destination} is {current.status.value}"
                f"{' (unknown result)' if current.unknown_result else ''}: nothing to resolve"
            )
        if created and not provider_order_id:
            raise ReviewError("say which provider order it is (provider_order_id)")
        now = _now()
        status = OutcomeStatus.SUCCEEDED if created else OutcomeStatus.FAILED_RETRYABLE
        code = "REVIEWED_CREATED" if created else "REVIEWED_NOT_CREATED"
        entry = self._entry(now, status, current.attempts, reason, None, code) | {"by": by[:100]}
        sets = ["#s = :status", "updated_at = :now", "unknown_result = :false", "error_code = :code"]
        sets.append("history = list_append(if_not_exists(history, :empty), :entry)")
        values: dict[str, Any] = {
            ":status": status.value,
            ":now": now.isoformat(),
            ":false": False,
            ":code": code,
            ":was": current.status.value,
            ":at": current.updated_at.isoformat(),
            ":empty": [],
        }
        if created:
            sets.append("provider_order_id = :order")
            values[":order"] = provider_order_id
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=_to_ddb({"tracking_id": tracking_id, "destination": destination}),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE unknown_since, error_message",
                ConditionExpression="#s = :was AND updated_at = :at",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_to_ddb(values) | {":entry": {"L": [{"M": _to_ddb(entry)}]}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise OutcomeConflictError(
                    f"{tracking_id}/{destination} changed while it was being resolved; look again"
                ) from exc
            raise
        resolved = self.get_one(tracking_id, destination)
        assert resolved is not None
        return resolved

    def sweep(self, *, received_older_than: timedelta, now: datetime | None = None) -> list[Outcome]:
        """Mark records nobody is acting on, so they show up with a code an operator sees.

        * RECEIVED for longer than `received_older_than`: its event never reached a dispatcher
          (queued and lost, or parked before its first claim). -> FAILED_RETRYABLE `NOT_STARTED`.
        * IN_FLIGHT with its lease over: the worker died mid-delivery and nothing took it over
          (its message went to the DLQ). -> FAILED_RETRYABLE `ABANDONED`, with `unknown_result`
          (it may have been sent), so any later attempt looks before it sends.

        Both stay claimable: if the event does come back (redrive, a late copy), it is delivered.
        Returns the records marked. Each write is conditional on the record being unchanged.
        """
        now = now or _now()
        marked: list[Outcome] = []
        stale = [
            (o, "NOT_STARTED", "no dispatcher started this delivery; redrive its event from the DLQ")
            for o in self.list_by_status(OutcomeStatus.RECEIVED, until=now - received_older_than)
        ] + [
            (o, "ABANDONED", "the worker delivering it stopped mid-delivery; it may have been sent")
            for o in self.list_by_status(OutcomeStatus.IN_FLIGHT, until=now)
            if o.lease_until is not None and o.lease_until < now
        ]
        for outcome, code, message in stale:
            abandoned = code == "ABANDONED"
            values: dict[str, Any] = {
                ":retry": OutcomeStatus.FAILED_RETRYABLE.value,
                ":now": now.isoformat(),
                ":code": code,
                ":message": message,
                ":unknown": abandoned or outcome.unknown_result,
                ":was": outcome.status.value,
                ":at": outcome.updated_at.isoformat(),
                ":empty": [],
            }
            sets = [
                "#s = :retry",
                "updated_at = :now",
                "error_code = :code",
                "error_message = :message",
                "unknown_result = :unknown",
                "history = list_append(if_not_exists(history, :empty), :entry)",
            ]
            if abandoned:
                sets.append("unknown_since = if_not_exists(unknown_since, :at)")
            entry = self._entry(now, OutcomeStatus.FAILED_RETRYABLE, outcome.attempts, message, None, code)
            try:
                self._ddb.update_item(
                    TableName=self.table_name,
                    Key=_to_ddb({"tracking_id": outcome.tracking_id, "destination": outcome.destination}),
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression="#s = :was AND updated_at = :at",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues=_to_ddb(values) | {":entry": {"L": [{"M": _to_ddb(entry)}]}},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # it moved on by itself
            marked.append(outcome)
        return marked

    def record_rejected(
        self,
        *,
        tracking_id: str,
        destination: str,
        source: str | None,
        error_code: str,
        message: str,
        external_order_id: str | None = None,
    ) -> None:
        """A message that never became a delivery (malformed, unknown route, a signed order the
        pipeline cannot take): recorded, not retried."""
        now = _now()
        item = self._base_item(tracking_id, destination, now) | {
            "status": OutcomeStatus.FAILED_PERMANENT.value,
            "source": source,
            "external_order_id": external_order_id,
            "source_ref": source_ref(source, external_order_id),
            "attempts": 1,
            "error_code": error_code,
            "error_message": message[:1000],
            "history": [self._entry(now, OutcomeStatus.FAILED_PERMANENT, 1, message[:200], None, error_code)],
        }
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item=_to_ddb(item),
                ConditionExpression="attribute_not_exists(tracking_id) OR #s <> :ok",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":ok": {"S": OutcomeStatus.SUCCEEDED.value}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # --- reads --------------------------------------------------------------------------------

    def get(self, tracking_id: str) -> list[Outcome]:
        """All destinations of one order (strongly consistent)."""
        items = self._ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="tracking_id = :t",
            ExpressionAttributeValues={":t": {"S": tracking_id}},
            ConsistentRead=True,
        )["Items"]
        # "status" guards against reading a half-applied update (moto's server is not atomic here)
        return [Outcome.model_validate(_from_ddb(i)) for i in items if "status" in i]

    def get_one(self, tracking_id: str, destination: str) -> Outcome | None:
        item = self._ddb.get_item(
            TableName=self.table_name,
            Key=_to_ddb({"tracking_id": tracking_id, "destination": destination}),
            ConsistentRead=True,
        ).get("Item")
        return Outcome.model_validate(_from_ddb(item)) if item and "status" in item else None

    def find_by_source_ref(self, source: str, external_order_id: str) -> list[Outcome]:
        items = self._ddb.query(
            TableName=self.table_name,
            IndexName=BY_SOURCE_REF_INDEX,
            KeyConditionExpression="source_ref = :r",
            ExpressionAttributeValues={":r": {"S": f"{source}#{external_order_id}"}},
        )["Items"]
        return [Outcome.model_validate(_from_ddb(i)) for i in items]

    def list_by_status(
        self, status: OutcomeStatus, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Outcome]:
        lo = (since or datetime(2000, 1, 1, tzinfo=UTC)).isoformat()
        hi = (until or datetime(9999, 1, 1, tzinfo=UTC)).isoformat()
        out: list[Outcome] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BY_STATUS_INDEX,
            "KeyConditionExpression": "#s = :s AND updated_at BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": _to_ddb({":s": status.value, ":lo": lo, ":hi": hi}),
        }
        while True:
            page = self._ddb.query(**kwargs)
            out += [Outcome.model_validate(_from_ddb(i)) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- helpers ------------------------------------------------------------------------------

    def _base_item(self, tracking_id: str, destination: str, now: datetime) -> dict[str, Any]:
        return {
            "tracking_id": tracking_id,
            "destination": destination,
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
            "expires_at": int((now + self._ttl).timestamp()),
        }

    @staticmethod
    def _entry(
        at: datetime,
        status: OutcomeStatus,
        attempt: int,
        note: str | None = None,
        http_status: int | None = None,
        error_code: str | None = None,
    ) -> dict[str, Any]:
        return {
            "at": at.isoformat(),
            "status": status.value,
            "attempt": attempt,
            "note": (note or "")[:200] or None,
            "http_status": http_status,
            "error_code": error_code,
        }

    def adopt_legacy_review(self, *, tracking_id: str, destination: str) -> bool:
        """Turn a delivery parked for review the old way (FAILED_PERMANENT, error code NEEDS_REVIEW,
        from before the NEEDS_REVIEW status) into NEEDS_REVIEW with an unknown result, which is
        what it meant, so `resolve_review` applies to it. False if it is not such a record.
        """
        current = self.get_one(tracking_id, destination)
        if current is None or current.status is not OutcomeStatus.FAILED_PERMANENT:
            return False
        now = _now()
        note = "parked for review as FAILED_PERMANENT (older dispatcher)"
        entry = self._entry(now, OutcomeStatus.NEEDS_REVIEW, current.attempts, note, None, "NEEDS_REVIEW")
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=_to_ddb({"tracking_id": tracking_id, "destination": destination}),
                UpdateExpression=(
                    "SET #s = :review, unknown_result = :true, updated_at = :now, "
                    "history = list_append(if_not_exists(history, :empty), :entry)"
                ),
                ConditionExpression="#s = :was AND error_code = :code",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_to_ddb(
                    {
                        ":review": OutcomeStatus.NEEDS_REVIEW.value,
                        ":true": True,
                        ":now": now.isoformat(),
                        ":empty": [],
                        ":was": OutcomeStatus.FAILED_PERMANENT.value,
                        ":code": "NEEDS_REVIEW",
                    }
                )
                | {":entry": {"L": [{"M": _to_ddb(entry)}]}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True
