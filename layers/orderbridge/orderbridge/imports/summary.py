"""Per-run summaries: every row accounted for, in the outcome table, the logs and the metrics.

A run's summary is one item in the outcome table, beside the orders it fed in:
`tracking_id = import#<source>`, `destination = run#<started_at>#<run_id>`. It has no `status`
attribute (its state is `run_status`), so it is not an `Outcome`: the status indexes, the status
endpoint and the operator's outcome listings never see it. `rows_imported + rows_skipped +
rows_rejected == rows_read`, always; the first rejections are kept with their reasons.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from pydantic import BaseModel, Field

from orderbridge.imports.mapping import RowRejection
from orderbridge.imports.state import from_ddb, to_ddb

logger = Logger(child=True)

KEEP_REJECTIONS = 100  # in the summary item (DynamoDB items are at most 400 KB)
LOG_REJECTIONS = 1000  # one log line each, per run


class RunStatus(StrEnum):
    COMPLETED = "COMPLETED"  # nothing left to read
    PARTIAL = "PARTIAL"  # stopped before the deadline; the next run continues at the checkpoint
    LEASE_HELD = "LEASE_HELD"  # another run holds the source: nothing done
    LEASE_LOST = "LEASE_LOST"  # another run took the source over mid-way
    FAILED = "FAILED"  # an error stopped the run; the checkpoint is where it was


class Counts(BaseModel):
    rows_read: int = 0
    rows_imported: int = 0
    rows_skipped: int = 0
    rows_rejected: int = 0
    orders_imported: int = 0
    orders_skipped: int = 0
    orders_rejected: int = 0
    rows_filtered: int = 0  # of rows_skipped: left out by the mapping's row filters (voided, cancelled)
    orders_filtered: int = 0

    def add(self, other: Counts) -> None:
        for name in Counts.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def balanced(self) -> bool:
        return self.rows_read == self.rows_imported + self.rows_skipped + self.rows_rejected


class FileSummary(Counts):
    file: str
    status: str = "PARTIAL"  # DONE | PARTIAL | FAILED
    from_line: int = 0
    to_line: int = 0
    reason: str | None = None


class RunSummary(Counts):
    run_id: str
    source: str
    kind: str
    trigger: str = "schedule"
    status: RunStatus = RunStatus.COMPLETED
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    files: list[FileSummary] = Field(default_factory=list)
    pages_read: int = 0
    message: str | None = None
    rejections: list[RowRejection] = Field(default_factory=list)
    rejections_not_kept: int = 0

    def reject(self, rejection: RowRejection) -> None:
        if len(self.rejections) < KEEP_REJECTIONS:
            self.rejections.append(rejection)
        else:
            self.rejections_not_kept += 1
        if len(self.rejections) + self.rejections_not_kept <= LOG_REJECTIONS:
            logger.warning(
                "import row rejected",
                extra={
                    "source": self.source,
                    "run_id": self.run_id,
                    "line": rejection.line,
                    "ref": rejection.ref,
                    "order_id": rejection.order_id,
                    "errors": [e.model_dump() for e in rejection.errors],
                },
            )

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in Counts.model_fields}

    def brief(self) -> dict[str, Any]:
        """What the function returns and the log line says: counts, status, files, no rejections."""
        return self.model_dump(mode="json", exclude={"rejections"})


class SummaryWriter:
    """Writes summaries to the outcome table, the log and CloudWatch metrics (EMF)."""

    def __init__(
        self, *, dynamodb_client: Any, outcome_table: str, ttl_days: int = 400, metrics: bool = True
    ) -> None:
        self._ddb = dynamodb_client
        self.table = outcome_table
        self._ttl = timedelta(days=ttl_days)
        self._metrics = metrics  # off for the operator CLI: EMF goes to stdout

    @staticmethod
    def tracking_id(source: str) -> str:
        return f"import#{source}"

    def write(self, summary: RunSummary) -> None:
        finished = summary.finished_at or datetime.now(UTC)
        item = {
            "tracking_id": self.tracking_id(summary.source),
            "destination": f"run#{summary.started_at.isoformat()}#{summary.run_id}",
            "record_type": "import_run",
            "run_status": summary.status.value,
            "source": summary.source,
            "kind": summary.kind,
            "trigger": summary.trigger,
            "run_id": summary.run_id,
            "created_at": summary.started_at.isoformat(),
            "updated_at": finished.isoformat(),
            "message": summary.message,
            "pages_read": summary.pages_read,
            "files": json.dumps([f.model_dump(mode="json") for f in summary.files]),
            "rejections": json.dumps([r.model_dump(mode="json") for r in summary.rejections]),
            "rejections_not_kept": summary.rejections_not_kept,
            "expires_at": int((finished + self._ttl).timestamp()),
            **summary.counts(),
        }
        self._ddb.put_item(TableName=self.table, Item=to_ddb(item))
        log = logger.warning if summary.status in (RunStatus.FAILED, RunStatus.LEASE_LOST) else logger.info
        log("import run summary", extra={"summary": summary.brief()})
        if self._metrics:
            self._emit(summary)

    @staticmethod
    def _emit(summary: RunSummary) -> None:
        metrics = EphemeralMetrics()
        metrics.add_dimension(name="Source", value=summary.source)
        for name, value in (
            ("ImportRowsRead", summary.rows_read),
            ("ImportRowsImported", summary.rows_imported),
            ("ImportRowsSkipped", summary.rows_skipped),
            ("ImportRowsRejected", summary.rows_rejected),
            ("ImportOrdersEnqueued", summary.orders_imported),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()

    def history(self, source: str, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs of a source, newest first (counts and status)."""
        items = self._ddb.query(
            TableName=self.table,
            KeyConditionExpression="tracking_id = :t",
            ExpressionAttributeValues={":t": {"S": self.tracking_id(source)}},
            ScanIndexForward=False,
            Limit=limit,
        )["Items"]
        return [from_ddb(i) for i in items]
