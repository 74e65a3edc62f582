"""Streaming CSV and JSON Lines with byte positions, grouped into orders.

A file is read as a stream of byte chunks (S3's `get_object` body, or a local file), from a byte
offset: a resumed run asks S3 for `Range: bytes=<offset>-` and never reads what an earlier run
finished. Every record knows its first line number and the byte offset just after it, and records
are grouped into *units*: the adjacent rows of one order (plus any unreadable rows among them).
A checkpoint is only ever the end of a unit, so an order's rows are never split across runs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from orderbridge.imports.mapping import FieldIssue, Row

CHUNK_BYTES = 256 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


class FileProblem(Exception):
    """The file as a whole cannot be imported (no header, a mapped column missing)."""


@dataclass
class Position:
    """Where a reader is: bytes from the start of the file, and physical lines read."""

    offset: int = 0
    line: int = 0  # lines fully read; the next line is line + 1


@dataclass
class Unit:
    """One order's adjacent rows (and unreadable rows among them), or unreadable rows on their own."""

    order_id: str | None
    rows: list[Row] = field(default_factory=list)
    orphans: list[Row] = field(default_factory=list)  # rows without a readable order number
    end: Position = field(default_factory=Position)

    @property
    def row_count(self) -> int:
        return len(self.rows) + len(self.orphans)


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Bytes chunks -> lines, each with its line ending (the last one may have none)."""
    pending = b""
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            yield data[start : end + 1]
            start = end + 1
        pending = data[start:]
        if len(pending) > MAX_LINE_BYTES:  # no newline for megabytes: hand it over as one "line"
            yield pending
            pending = b""
    if pending:
        yield pending


class _Lines:
    """Decoded lines for `csv.reader`, counting bytes and lines as they are handed out."""

    def __init__(self, chunks: Iterable[bytes], start: Position, encoding: str = "utf-8") -> None:
        self.position = Position(start.offset, start.line)
        self.encoding = encoding
        self.undecodable: set[int] = set()  # line numbers that were not valid in the encoding
        self._raw = split_lines(chunks)
        self._first = start.offset == 0

    def __iter__(self) -> Iterator[str]:
        for raw in self._raw:
            self.position.offset += len(raw)
            self.position.line += 1
            if self._first:
                self._first = False
                if raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
            encoding = self.encoding
            if encoding == "auto":  # UTF-8, else the line is Windows-1252 (Excel's re-save)
                try:
                    text = raw.decode("utf-8")
                    yield text
                    continue
                except UnicodeDecodeError:
                    encoding = "cp1252"
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                self.undecodable.add(self.position.line)
                text = raw.decode(encoding, errors="replace")
            yield text


def _undecodable(lines: _Lines, first: int, last: int) -> FieldIssue | None:
    if any(n in lines.undecodable for n in range(first, last + 1)):
        if lines.encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
            return FieldIssue(code="not_utf8", message="the row is not valid UTF-8")
        return FieldIssue(code="not_decodable", message=f"the row is not valid {lines.encoding}")
    return None


def csv_rows(
    chunks: Iterable[bytes],
    *,
    start: Position,
    header: Sequence[str] | None,
    order_id: Callable[[dict[str, Any]], str | None],
    delimiter: str = ",",
    required_columns: Sequence[str] = (),
    on_header: Callable[[list[str]], None] | None = None,
    encoding: str = "utf-8",
) -> Iterator[tuple[Row, Position]]:
    """(row, position after it) for each CSV record; the header is read first when at offset 0."""
    lines = _Lines(chunks, start, encoding)
    reader = csv.reader(iter(lines), delimiter=delimiter, strict=False)
    columns: list[str] | None = list(header) if header is not None else None
    while True:
        first = lines.position.line + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = Row(line=first, problem=FieldIssue(code="malformed_csv", message=str(exc)))
            yield row, Position(lines.position.offset, lines.position.line)
            continue
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line: not a row
        if columns is None:
            columns = [c.strip() for c in record]
            missing = [c for c in required_columns if c not in columns]
            if missing:
                raise FileProblem(f"the header has no column(s) {', '.join(missing)}")
            if len(set(columns)) != len(columns):
                raise FileProblem("the header names a column twice")
            if on_header is not None:
                on_header(columns)
            continue
        values = dict(zip(columns, record, strict=False))
        problem = _undecodable(lines, first, lines.position.line)
        if problem is None and len(record) != len(columns):
            problem = FieldIssue(
                code="malformed_row", message=f"expected {len(columns)} columns, found {len(record)}"
            )
        row = Row(line=first, values=values, order_id=order_id(values), problem=problem)
        yield row, Position(lines.position.offset, lines.position.line)


def jsonl_rows(
    chunks: Iterable[bytes],
    *,
    start: Position,
    order_id: Callable[[dict[str, Any]], str | None],
) -> Iterator[tuple[Row, Position]]:
    """(row, position after it) for each JSON Lines record (one JSON object per line)."""
    lines = _Lines(chunks, start)
    for text in lines:
        number = lines.position.line
        after = Position(lines.position.offset, number)
        if not text.strip():
            continue
        problem = _undecodable(lines, number, number)
        if problem is not None:
            yield Row(line=number, problem=problem), after
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            problem = FieldIssue(code="malformed_json", message=f"not valid JSON: {exc.msg}")
            yield Row(line=number, problem=problem), after
            continue
        if not isinstance(value, dict):
            problem = FieldIssue(code="malformed_json", message="expected a JSON object")
            yield Row(line=number, problem=problem), after
            continue
        yield Row(line=number, values=value, order_id=order_id(value)), after


def group_units(rows: Iterable[tuple[Row, Position]], *, adjacent: bool = True) -> Iterator[Unit]:
    """Adjacent rows with the same order number become one unit.

    A row without a readable order number joins the unit being built (it is rejected on its own,
    but it must not move a checkpoint into the middle of an order). With `adjacent=False` (feeds)
    every row is its own unit.
    """
    current: Unit | None = None
    for row, after in rows:
        if row.order_id is None:
            if current is None:
                yield Unit(order_id=None, orphans=[row], end=after)
            else:
                current.orphans.append(row)
                current.end = after
            continue
        if current is not None and adjacent and row.order_id == current.order_id:
            current.rows.append(row)
            current.end = after
            continue
        if current is not None:
            yield current
        current = Unit(order_id=row.order_id, rows=[row], end=after)
    if current is not None:
        yield current
