"""An import run, start to finish: lease, read from the checkpoint, enqueue in chunks, summarize.

One run per source at a time (a lease in the import state table). A run reads units (an order's
adjacent rows) from its checkpoint, and every `chunk_orders` orders it *commits*: known orders are
skipped, new ones are sent to the order queue and written to the ledger, and only then does the
checkpoint move (a conditional write that also renews the lease). Rows are counted when their
chunk commits, so the counts of consecutive runs add up to the file exactly. Before the function's
time runs out (a safety margin) the run commits what it has and stops; the next run continues.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from orderbridge.config import ConfigStore
from orderbridge.exceptions import ConfigurationError
from orderbridge.identity import effective_shop
from orderbridge.imports.config import FeedSource, ImportSource, S3Source
from orderbridge.imports.enqueue import EnqueueError, OrderSink
from orderbridge.imports.feed import FeedClient, FeedError, parse_time, with_overlap
from orderbridge.imports.mapping import FieldIssue, OrderBuilder, Row, RowRejection, lookup, orphan_rejection
from orderbridge.imports.readers import (
    CHUNK_BYTES,
    FileProblem,
    Position,
    Unit,
    csv_rows,
    group_units,
    jsonl_rows,
)
from orderbridge.imports.state import ImportStateStore, LeaseHeld, LeaseLost
from orderbridge.imports.summary import Counts, FileSummary, RunStatus, RunSummary, SummaryWriter
from orderbridge.models.order import CanonicalOrder

logger = Logger(child=True)

Format = Literal["csv", "jsonl"]
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PROCESSED_TAG = "orderbridge-import"
Progress = Callable[["ProgressEvent"], None]


class UnknownSourceError(ConfigurationError):
    """The configuration has no import source of that name."""


class ImportTrigger(BaseModel):
    """What the EventBridge Scheduler target (or an operator) sends the import function."""

    model_config = ConfigDict(extra="ignore")

    trigger: str = "schedule"
    sources: list[str] | None = None  # default: every enabled source
    schedule_arn: str | None = None
    scheduled_time: str | None = None
    execution_id: str | None = None
    attempt: str | int | None = None


@dataclass(frozen=True)
class ImportSettings:
    safety_margin_seconds: float = 20.0  # stop this long before the function's time runs out
    chunk_orders: int = 100  # orders per commit (one ledger/outcome batch-get, ten SQS batches)
    lease_grace_seconds: float = 30.0  # the lease outlives the invocation by this much
    open_lease_seconds: float = 300.0  # runs without a deadline (CLI): renewed at every commit
    tag_processed: bool = True


@dataclass(frozen=True)
class ProgressEvent:
    file: str | None
    done_bytes: int
    total_bytes: int | None
    summary: RunSummary


class Deadline:
    """When to stop: the Lambda's remaining time minus a margin, and/or a wall-clock slice."""

    def __init__(
        self,
        remaining_ms: Callable[[], int] | None = None,
        *,
        margin_seconds: float = 20.0,
        grace_seconds: float = 30.0,
        open_lease_seconds: float = 300.0,
        until: float | None = None,
    ) -> None:
        self.remaining_ms = remaining_ms
        self.margin = margin_seconds
        self.grace = grace_seconds
        self.open_lease = open_lease_seconds
        self.until = until  # time.monotonic() value

    def expired(self) -> bool:
        if self.remaining_ms is not None and self.remaining_ms() < self.margin * 1000:
            return True
        return self.until is not None and time.monotonic() >= self.until

    def lease_seconds(self) -> float:
        if self.remaining_ms is None:
            return self.open_lease
        return max(self.remaining_ms() / 1000, 1.0) + self.grace


@dataclass
class _Run:
    source_name: str
    source: ImportSource
    summary: RunSummary
    owner: str
    deadline: Deadline
    builder: OrderBuilder
    destinations: list[str]
    state: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None


@dataclass(frozen=True)
class _File:
    """A file to import: its id in the state table, a name for people, and how to read it."""

    id: str
    name: str
    etag: str
    size: int | None
    format: Format | None
    open: Callable[[int], Iterable[bytes]]
    s3: tuple[str, str] | None = None  # (bucket, key) when it is an S3 object


@dataclass
class _Flushed:
    counts: Counts = field(default_factory=Counts)
    rejections: list[RowRejection] = field(default_factory=list)


class ImportService:
    """Runs imports for the sources in the configuration document's `imports` section."""

    def __init__(
        self,
        *,
        config: ConfigStore,
        state: ImportStateStore,
        sink: OrderSink,
        summaries: SummaryWriter,
        s3_client: Any,
        import_bucket: str | None,
        feed_client: FeedClient,
        settings: ImportSettings | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.sink = sink
        self.summaries = summaries
        self.s3 = s3_client
        self.import_bucket = import_bucket
        self.feed = feed_client
        self.settings = settings or ImportSettings()

    # --- entry points -----------------------------------------------------------------------------

    def deadline(self, remaining_ms: Callable[[], int] | None = None, until: float | None = None) -> Deadline:
        s = self.settings
        return Deadline(
            remaining_ms,
            margin_seconds=s.safety_margin_seconds,
            grace_seconds=s.lease_grace_seconds,
            open_lease_seconds=s.open_lease_seconds,
            until=until,
        )

    def run_all(
        self, trigger: ImportTrigger | None = None, *, remaining_ms: Callable[[], int] | None = None
    ) -> list[RunSummary]:
        """What the schedule does: every enabled source (or those named), each in a fair time slice."""
        trigger = trigger or ImportTrigger()
        sources = self.config.load().imports
        if trigger.sources:
            unknown = sorted(set(trigger.sources) - set(sources))
            if unknown:
                logger.warning("trigger names unknown import sources", extra={"sources": unknown})
            names = [n for n in trigger.sources if n in sources]
        else:
            names = [n for n, s in sources.items() if s.enabled]
        summaries: list[RunSummary] = []
        for i, name in enumerate(names):
            until = None
            if remaining_ms is not None:
                spare = remaining_ms() / 1000 - self.settings.safety_margin_seconds
                if spare <= 0:
                    logger.warning("no time left for import sources", extra={"sources": names[i:]})
                    break
                until = time.monotonic() + spare / (len(names) - i)
            deadline = self.deadline(remaining_ms, until)
            summaries.append(self.run_source(name, deadline=deadline, trigger=trigger.trigger))
        return summaries

    def run_source(
        self,
        name: str,
        *,
        deadline: Deadline | None = None,
        trigger: str = "schedule",
        progress: Progress | None = None,
    ) -> RunSummary:
        source = self._source(name)
        if isinstance(source, S3Source):
            bucket = source.bucket or self.import_bucket
            if not bucket:
                raise ConfigurationError(f"import source {name!r}: no bucket configured")
            return self._run(
                name, source, deadline, trigger, progress, lambda run: self._s3(run, bucket, source.prefix)
            )
        return self._run(name, source, deadline, trigger, progress, self._feed)

    def import_s3(
        self,
        name: str,
        *,
        bucket: str,
        prefix: str,
        deadline: Deadline | None = None,
        trigger: str = "cli",
        progress: Progress | None = None,
    ) -> RunSummary:
        """New files under any bucket/prefix, with an S3 source's mapping (the operator's `import s3://`)."""
        source = self._source(name, S3Source)
        return self._run(name, source, deadline, trigger, progress, lambda run: self._s3(run, bucket, prefix))

    def import_local_file(
        self,
        name: str,
        path: Path,
        *,
        format: Format | None = None,
        deadline: Deadline | None = None,
        trigger: str = "cli",
        progress: Progress | None = None,
    ) -> RunSummary:
        """One file on this machine, with an S3 source's mapping; resumable like any other file."""
        source = self._source(name, S3Source)
        fmt = format or (source.format if source.format != "auto" else _EXTENSIONS.get(path.suffix.lower()))
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()

        def opener(offset: int) -> Iterator[bytes]:
            with path.open("rb") as f:
                f.seek(offset)
                yield from iter(lambda: f.read(CHUNK_BYTES), b"")

        file = _File(
            id=f"local/{sha}", name=path.name, etag=sha, size=path.stat().st_size, format=fmt, open=opener
        )

        def body(run: _Run) -> None:
            if not self._import_file(run, file):
                run.summary.status = RunStatus.PARTIAL

        return self._run(name, source, deadline, trigger, progress, body)

    def history(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        return self.summaries.history(name, limit)

    # --- one run ----------------------------------------------------------------------------------

    def _source(self, name: str, kind: type | None = None) -> ImportSource:
        source = self.config.load().imports.get(name)
        if source is None:
            raise UnknownSourceError(f"no import source {name!r} in the configuration")
        if kind is not None and not isinstance(source, kind):
            raise UnknownSourceError(f"import source {name!r} is a {source.kind} source, not {kind.__name__}")
        return source

    def _run(
        self,
        name: str,
        source: ImportSource,
        deadline: Deadline | None,
        trigger: str,
        progress: Progress | None,
        body: Callable[[_Run], None],
    ) -> RunSummary:
        config = self.config.load()
        deadline = deadline or self.deadline()
        run_id = uuid.uuid4().hex[:16]
        summary = RunSummary(run_id=run_id, source=name, kind=source.kind, trigger=trigger)
        run = _Run(
            source_name=name,
            source=source,
            summary=summary,
            owner=f"{trigger}:{run_id}",
            deadline=deadline,
            builder=OrderBuilder(source.mapping, dotted=True),
            destinations=[d.destination for d in config.routes[source.route].destinations],
            progress=progress,
        )
        acquired = self.state.acquire(name, run.owner, deadline.lease_seconds())
        if isinstance(acquired, LeaseHeld):
            summary.status = RunStatus.LEASE_HELD
            held_until = datetime.fromtimestamp(acquired.until, UTC).isoformat()
            summary.message = f"another run ({acquired.owner}) holds the source until {held_until}"
            logger.info("import source busy", extra={"source": name, "holder": acquired.owner})
            return self._finish(run, release=False)
        run.state = acquired
        try:
            body(run)
            refused = [f for f in summary.files if f.status == "FAILED"]
            if refused and summary.status in (RunStatus.COMPLETED, RunStatus.PARTIAL):
                # a file refused as a whole is a failed run (it is recorded and not tried again)
                reasons = "; ".join(f"{f.file}: {f.reason}" for f in refused)
                more = (
                    " (the run stopped early; the next run goes on)"
                    if summary.status is RunStatus.PARTIAL
                    else ""
                )
                summary.status = RunStatus.FAILED
                summary.message = f"{len(refused)} file(s) refused as a whole: {reasons}{more}"
        except LeaseLost as exc:
            summary.status, summary.message = RunStatus.LEASE_LOST, str(exc)
        except (EnqueueError, FeedError, ClientError, BotoCoreError, ConfigurationError) as exc:
            summary.status, summary.message = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
            logger.exception("import run failed", extra={"source": name, "run_id": run_id})
        except Exception as exc:
            summary.status, summary.message = RunStatus.FAILED, f"unexpected {type(exc).__name__}: {exc}"
            self._finish(run, release=True)
            raise
        return self._finish(run, release=True)

    def _finish(self, run: _Run, *, release: bool) -> RunSummary:
        if release:
            try:
                self.state.release(run.source_name, run.owner)
            except (ClientError, BotoCoreError):
                logger.exception("could not release the import lease; it expires by itself")
        run.summary.finished_at = datetime.now(UTC)
        try:
            self.summaries.write(run.summary)
        except (ClientError, BotoCoreError):
            logger.exception(
                "could not record the import run summary", extra={"summary": run.summary.brief()}
            )
        return run.summary

    # --- S3 ---------------------------------------------------------------------------------------

    def _s3(self, run: _Run, bucket: str, prefix: str) -> None:
        assert isinstance(run.source, S3Source)
        base = f"s3://{bucket}/"
        listing: dict[str, dict[str, Any]] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/") or key.startswith(prefix + "processed/"):
                    continue
                if run.source.format == "auto" and Path(key).suffix.lower() not in _EXTENSIONS:
                    continue
                listing[base + key] = obj
        in_progress = {f for f in run.state.get("files", {}) if f.startswith(base + prefix)}
        for gone in sorted(in_progress - set(listing)):
            logger.warning("file in progress is gone; dropping its checkpoint", extra={"file": gone})
            self.state.checkpoint(
                run.source_name, run.owner, lease_seconds=run.deadline.lease_seconds(), file=(gone, None)
            )
        finished = self.state.finished_files(run.source_name, list(listing))
        todo = [
            (file_id, obj)
            for file_id, obj in listing.items()
            if not (file_id in finished and finished[file_id].get("etag") == obj["ETag"])
        ]
        todo.sort(key=lambda item: (item[0] not in in_progress, item[1]["LastModified"], item[0]))
        for file_id, obj in todo:
            if run.deadline.expired():
                run.summary.status = RunStatus.PARTIAL
                return
            key = obj["Key"]
            file = _File(
                id=file_id,
                name=file_id,
                etag=obj["ETag"],
                size=int(obj["Size"]),
                format=run.source.format
                if run.source.format != "auto"
                else _EXTENSIONS[Path(key).suffix.lower()],
                open=self._s3_opener(bucket, key, obj["ETag"], int(obj["Size"])),
                s3=(bucket, key),
            )
            if not self._import_file(run, file):
                run.summary.status = RunStatus.PARTIAL
                return

    def _s3_opener(self, bucket: str, key: str, etag: str, size: int) -> Callable[[int], Iterator[bytes]]:
        def opener(offset: int) -> Iterator[bytes]:
            if offset >= size:
                return
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "IfMatch": etag}
            if offset:
                kwargs["Range"] = f"bytes={offset}-"
            body = self.s3.get_object(**kwargs)["Body"]
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            finally:
                body.close()

        return opener

    def _tag(self, file: _File, value: str) -> None:
        if file.s3 is None or not self.settings.tag_processed:
            return
        bucket, key = file.s3
        try:
            tags = self.s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
            tags = [t for t in tags if t["Key"] != PROCESSED_TAG] + [{"Key": PROCESSED_TAG, "Value": value}]
            self.s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tags[-10:]})
        except (ClientError, BotoCoreError):
            logger.warning(
                "could not tag the imported file (it is recorded as done)", extra={"file": file.name}
            )

    # --- one file ---------------------------------------------------------------------------------

    def _import_file(self, run: _Run, file: _File) -> bool:
        """Import `file` from its checkpoint. True when the file is finished (done or refused)."""
        summary = run.summary
        cp = run.state.get("files", {}).get(file.id)
        if cp is not None and cp.get("etag") != file.etag:
            logger.warning("file changed since its checkpoint; reading it again", extra={"file": file.name})
            cp = None
        start = Position(int(cp["offset"]), int(cp["line"])) if cp else Position()
        header: list[str] | None = list(cp["header"]) if cp and cp.get("header") else None
        totals = Counts(**(cp.get("totals") or {})) if cp else Counts()
        result = FileSummary(file=file.name, from_line=start.line, to_line=start.line)
        summary.files.append(result)
        lease = run.deadline.lease_seconds

        def checkpoint(position: Position) -> None:
            entry = {
                "etag": file.etag,
                "name": file.name,
                "offset": position.offset,
                "line": position.line,
                "header": header,
                "totals": totals.model_dump(),
                "updated_at": datetime.now(UTC).isoformat(),
            }
            self.state.checkpoint(run.source_name, run.owner, lease_seconds=lease(), file=(file.id, entry))

        def finish(status: str, reason: str | None = None) -> bool:
            result.status, result.reason = status, reason
            self.state.record_file(
                run.source_name,
                file.id,
                {
                    "etag": file.etag,
                    "file_status": status,
                    "name": file.name,
                    "reason": reason,
                    **totals.model_dump(),
                },
            )
            self.state.checkpoint(run.source_name, run.owner, lease_seconds=lease(), file=(file.id, None))
            self._tag(file, status.lower())
            logger.info(
                "import file finished",
                extra={"file": file.name, "status": status, "totals": totals.model_dump()},
            )
            return True

        if file.format is None:
            return finish(
                "FAILED", "unknown format: name the file .csv or .jsonl, or set the source's format"
            )

        def on_header(columns: list[str]) -> None:
            nonlocal header
            header = columns

        chunks = file.open(start.offset)
        rows: Iterator[tuple[Row, Position]]
        if file.format == "csv":
            assert isinstance(run.source, S3Source)
            rows = csv_rows(
                chunks,
                start=start,
                header=header,
                order_id=run.builder.order_id,
                delimiter=run.source.delimiter,
                required_columns=run.source.mapping.required_columns(),
                on_header=on_header,
                encoding=run.source.encoding,
            )
        else:
            rows = jsonl_rows(chunks, start=start, order_id=run.builder.order_id)

        pending: list[Unit] = []
        orders_pending = 0
        try:
            for unit in group_units(rows):
                pending.append(unit)
                orders_pending += 1 if unit.rows else 0
                out_of_time = run.deadline.expired()
                if orders_pending >= self.settings.chunk_orders or out_of_time:
                    self._commit_file_chunk(run, file, pending, totals, result, checkpoint)
                    pending, orders_pending = [], 0
                    if out_of_time:
                        return False
            if pending:
                self._commit_file_chunk(run, file, pending, totals, result, checkpoint)
        except FileProblem as exc:
            return finish("FAILED", str(exc))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                logger.warning(
                    "file replaced while being read; the next run reads the new one",
                    extra={"file": file.name},
                )
                return False
            raise
        return finish("DONE")

    def _commit_file_chunk(
        self,
        run: _Run,
        file: _File,
        units: list[Unit],
        totals: Counts,
        result: FileSummary,
        checkpoint: Callable[[Position], None],
    ) -> None:
        flushed = self._flush(run, units, origin=file.name)
        totals.add(flushed.counts)
        checkpoint(units[-1].end)  # raises LeaseLost: then nothing below is counted
        self._count(run, flushed)
        result.add(flushed.counts)
        result.to_line = units[-1].end.line
        if run.progress is not None:
            run.progress(ProgressEvent(file.name, units[-1].end.offset, file.size, run.summary))

    # --- the chunk: validate, skip known, send, ledger -------------------------------------------------

    def _flush(self, run: _Run, units: list[Unit], *, origin: str) -> _Flushed:
        out = _Flushed()
        counts = out.counts
        candidates: list[tuple[CanonicalOrder, int]] = []
        in_chunk: set[str] = set()
        id_column = run.source.mapping.group_column()
        for unit in units:
            counts.rows_read += unit.row_count
            for orphan in unit.orphans:
                out.rejections.append(orphan_rejection(orphan, id_column))
                counts.rows_rejected += 1
            if not unit.rows:
                continue
            if run.builder.filtered(unit.rows):  # left out on purpose (voided, cancelled)
                counts.rows_skipped += len(unit.rows)
                counts.orders_skipped += 1
                counts.rows_filtered += len(unit.rows)
                counts.orders_filtered += 1
                continue
            built = run.builder.build(unit.rows)
            if built.order is None:
                out.rejections += built.rejections
                counts.rows_rejected += len(unit.rows)
                counts.orders_rejected += 1
                continue
            ext = built.order.external_order_id or ""
            if ext in in_chunk:
                counts.rows_skipped += len(unit.rows)
                counts.orders_skipped += 1
                continue
            in_chunk.add(ext)
            candidates.append((built.order, len(unit.rows)))
        known = self.sink.known(
            run.source_name,
            run.destinations,
            [o.external_order_id or "" for o, _ in candidates],
            shop=effective_shop(run.source, run.source_name),
        )
        new = [(o, n) for o, n in candidates if o.external_order_id not in known]
        for order, rows in candidates:
            if order.external_order_id in known:
                counts.rows_skipped += rows
                counts.orders_skipped += 1
        if new:
            self.sink.send(
                source=run.source_name,
                route=run.source.route,
                orders=[o for o, _ in new],
                origin=origin,
                run_id=run.summary.run_id,
                shop=effective_shop(run.source, run.source_name),
            )
        counts.rows_imported += sum(n for _, n in new)
        counts.orders_imported += len(new)
        return out

    @staticmethod
    def _count(run: _Run, flushed: _Flushed) -> None:
        """Committed: the chunk's rows now count in the run's summary."""
        run.summary.add(flushed.counts)
        for rejection in flushed.rejections:
            run.summary.reject(rejection)

    # --- feeds ------------------------------------------------------------------------------------

    def _feed(self, run: _Run) -> None:
        """Walk the feed from its checkpoint, one commit per page.

        A *pass* asks for everything updated since the watermark and walks its pages by position
        (body cursor, `Link` rel="next", or page numbers), so orders sharing one update time are all
        read however the pages split them; only when the pass ends does the watermark move, to the
        latest update time among the orders read (inclusive: the boundary orders come again and are
        skipped as known). Style `since` (ascending feeds) moves the watermark page by page instead,
        and pages through orders that share one time with `page_param`. A feed that cannot move on
        (the same cursor or page again, a full page stuck at one time and no way to page) fails the
        run: it never reports COMPLETED with orders left unread."""
        source = run.source
        assert isinstance(source, FeedSource)
        paging = source.paging
        style = paging.style
        state = dict(run.state.get("feed") or {})
        cursor: str | None = state.get("cursor")
        since: str | None = state.get("since") or source.start_since
        pass_max: str | None = state.get("pass_max")
        page_no = int(state.get("page") or 0)
        next_page = int(state.get("next_page") or 1)
        numbered = style == "page" or (style == "since" and paging.page_param is not None)
        back = paging.overlap_seconds + (1 if paging.since_exclusive else 0)
        ordinal = 0
        cursor_retried = False
        previous_ids: list[str | None] | None = None
        while True:
            if run.deadline.expired():
                run.summary.status = RunStatus.PARTIAL
                return
            try:
                page = self.feed.page(
                    source,
                    since=with_overlap(since, back),
                    cursor=cursor,
                    page=next_page if numbered else None,
                )
            except FeedError as exc:
                if exc.cursor_rejected and not cursor_retried:
                    logger.warning("feed refused the stored cursor; starting again from updated_since")
                    cursor, pass_max, page_no, next_page, cursor_retried = None, None, 0, 1, True
                    continue
                raise
            if cursor is not None and page.next_cursor == cursor:
                raise FeedError("the feed answered with the cursor it was given: it would never end")
            ids = [run.builder.order_id(i) if isinstance(i, dict) else None for i in page.items]
            if numbered and ids and ids == previous_ids:
                raise FeedError(
                    f"the feed answered page {next_page} with the orders of the page before: "
                    f"it ignores {paging.page_param!r}; orders would be left unread"
                )
            previous_ids = ids
            page_no += 1
            run.summary.pages_read += 1
            units: list[Unit] = []
            for i, item in enumerate(page.items, start=1):
                ordinal += 1
                ref = f"page {page_no}, item {i}"
                if isinstance(item, dict):
                    row = Row(line=ordinal, ref=ref, values=item, order_id=run.builder.order_id(item))
                else:
                    problem = FieldIssue(code="malformed_item", message="expected a JSON object")
                    row = Row(line=ordinal, ref=ref, problem=problem)
                units += group_units([(row, Position())], adjacent=False)
            flushed = self._flush(run, units, origin=f"{source.url} page {page_no}") if units else _Flushed()
            times = [lookup(i, paging.updated_at, dotted=True) for i in page.items if isinstance(i, dict)]
            page_max = _latest(None, times)
            pass_max = _latest(pass_max, times)
            full = len(page.items) >= paging.page_size
            stalled: str | None = None
            end_pass = {
                "cursor": None,
                "since": pass_max or since,
                "pass_max": None,
                "page": 0,
                "next_page": 1,
            }
            if style in ("cursor", "link"):
                done = page.next_cursor is None
                new_state = (
                    end_pass
                    if done
                    else {"cursor": page.next_cursor, "since": since, "pass_max": pass_max, "page": page_no}
                )
            elif style == "page":
                if page.total_pages is not None:
                    done = next_page >= page.total_pages or not page.items
                else:
                    done = not full
                new_state = (
                    end_pass
                    if done
                    else {"since": since, "pass_max": pass_max, "page": page_no, "next_page": next_page + 1}
                )
            else:  # since: the watermark moves page by page (oldest first)
                done = not full
                moved = _after(page_max, since)
                if done or moved:
                    new_state = {"since": _latest(since, times), "page": page_no, "next_page": 1}
                elif numbered:  # a full page at one time: the next page of the same time
                    new_state = {"since": since, "page": page_no, "next_page": next_page + 1}
                else:
                    new_state = {"since": since, "page": page_no, "next_page": 1}
                    stalled = (
                        f"a full page of {len(page.items)} orders all updated at {since}: the feed "
                        "cannot page past them (no cursor, no page_param); orders would be left unread"
                    )
                if done:
                    new_state |= {"page": 0}
            self.state.checkpoint(
                run.source_name,
                run.owner,
                lease_seconds=run.deadline.lease_seconds(),
                feed=new_state | {"updated_at": datetime.now(UTC).isoformat()},
            )
            self._count(run, flushed)
            if run.progress is not None:
                run.progress(ProgressEvent(f"{source.url} page {page_no}", page_no, None, run.summary))
            if stalled:
                raise FeedError(stalled)
            if done:
                return
            cursor = new_state.get("cursor")
            since = new_state["since"]
            pass_max = new_state.get("pass_max")
            if new_state.get("next_page", 1) == 1 and style == "since":
                previous_ids = None
            next_page = int(new_state.get("next_page") or 1)


def _after(value: str | None, since: str | None) -> bool:
    """`value` is a time later than `since` (or there is no usable `since`)."""
    at, floor = parse_time(value), parse_time(since)
    return at is not None and (floor is None or at > floor)


def _latest(current: str | None, values: Iterable[Any]) -> str | None:
    """The latest of ISO timestamps (kept as the feed wrote them)."""
    best, best_at = current, parse_time(current)
    for value in values:
        at = parse_time(value)
        if at is not None and (best_at is None or at > best_at):
            best, best_at = str(value).strip(), at
    return best
