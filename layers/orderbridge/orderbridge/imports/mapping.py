"""Rows (CSV) and records (JSON) to canonical orders, with every problem named in source terms.

A group is the rows that share one order number, in file order. Order-level fields come from the
group's rows and must agree; each row (or each element of `lines_path`) is one line. Validation is
`CanonicalOrder`'s own; its errors are mapped back to the line number and the source column, so a
rejection reads `line 17, qty: Input should be greater than or equal to 1`. Values never appear in
messages (they may be an email address or a phone number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orderbridge.imports.config import FieldMapping, is_line_target
from orderbridge.models.order import CanonicalOrder

ORDER_REJECTED = "order_rejected"
_ADDRESSES = ("billing_address", "shipping_address")


class FieldIssue(BaseModel):
    """One problem with one field (or with the row as a whole when `field` is None)."""

    model_config = ConfigDict(frozen=True)

    field: str | None = None
    code: str
    message: str


class Row(BaseModel):
    """One source row (CSV) or record (JSON), as read, with where it is."""

    model_config = ConfigDict(frozen=True)

    line: int = Field(ge=1, description="Line number in the file (header = 1), or ordinal in a feed run.")
    ref: str | None = Field(default=None, description="Where it came from in a feed: `page 2, item 5`.")
    values: dict[str, Any] | None = Field(default=None, description="Column -> text, or the JSON object.")
    order_id: str | None = None
    problem: FieldIssue | None = Field(default=None, description="Unreadable row (bad CSV, bad JSON).")


class RowRejection(BaseModel):
    """Why one row was not imported."""

    line: int | None = None
    ref: str | None = None
    order_id: str | None = None
    errors: list[FieldIssue]

    def describe(self) -> str:
        where = self.ref or (f"line {self.line}" if self.line is not None else "?")
        issues = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in self.errors)
        return f"{where}: {issues}"


class Built(BaseModel):
    """A group's result: the order, or one rejection per row of the group."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    order: CanonicalOrder | None = None
    rejections: list[RowRejection] = Field(default_factory=list)


def lookup(values: Mapping[str, Any], path: str, *, dotted: bool) -> Any:
    """A column's value, or (JSON) a dotted path's: `customer.email`, `items.0.sku`."""
    if path in values:
        return values[path]
    if not dotted:
        return None
    current: Any = values
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def as_text(value: Any) -> str | None:
    """A source value as text for the model; empty means absent. Objects/arrays are refused."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        text = value.strip()
        return text or None
    raise TypeError("expected a single value, found a list or an object")


def _put(document: dict[str, Any], target: str, value: str) -> None:
    """Set `buyer.email` / `metadata.channel` in an order, or `lines.sku` / `lines.options.size` in a line."""
    parts = target.split(".")
    if parts[0] == "lines":
        parts = parts[1:]
    node = document
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class OrderBuilder:
    """Builds canonical orders from groups of rows with one source's mapping."""

    def __init__(self, mapping: FieldMapping, *, dotted: bool = True) -> None:
        self.mapping = mapping
        self.dotted = dotted  # JSON records: paths may be dotted
        self.order_fields = [(t, c) for t, c in mapping.fields.items() if not is_line_target(t)]
        self.line_fields = [(t, c) for t, c in mapping.fields.items() if is_line_target(t)]
        self.order_defaults = {t: v for t, v in mapping.defaults.items() if not is_line_target(t)}
        self.line_defaults = {t: v for t, v in mapping.defaults.items() if is_line_target(t)}
        self.id_column = mapping.fields["external_order_id"]

    def order_id(self, values: Mapping[str, Any]) -> str | None:
        try:
            return as_text(lookup(values, self.id_column, dotted=self.dotted))
        except TypeError:
            return None

    def build(self, rows: Sequence[Row]) -> Built:
        """One order from the rows of one group (same order number, adjacent)."""
        problems: dict[int, list[FieldIssue]] = {}  # row index -> issues
        document: dict[str, Any] = {"buyer": {}}
        seen_at: dict[str, int] = {}  # order-level target -> row index that set it
        lines: list[dict[str, Any]] = []
        origins: list[tuple[int, str]] = []  # per line: (row index, field prefix for error names)

        for index, row in enumerate(rows):
            if row.problem is not None:
                problems.setdefault(index, []).append(row.problem)
            values = row.values or {}
            for target, column in self.order_fields:
                value = self._value(values, column, problems, index)
                if value is None:
                    continue
                if target not in seen_at:
                    _put(document, target, value)
                    seen_at[target] = index
                elif _get(document, target) != value:
                    first = rows[seen_at[target]]
                    problems.setdefault(index, []).append(
                        FieldIssue(
                            field=column,
                            code="conflicting_value",
                            message=f"differs from the same order's {_where(first)}; "
                            "order-level columns must agree on every row of an order",
                        )
                    )
            for element, prefix in self._line_elements(values, index, problems):
                line: dict[str, Any] = {}
                for target, column in self.line_fields:
                    value = self._value(element, column, problems, index, prefix)
                    if value is not None:
                        _put(line, target, value)
                for target, value in self.line_defaults.items():
                    if _get(line, target) is None:
                        _put(line, target, value)
                lines.append(line)
                origins.append((index, prefix))

        for target, value in self.order_defaults.items():
            if target not in seen_at:
                _put(document, target, value)
        for address in _ADDRESSES:
            if address in document and not any(document[address].values()):
                del document[address]
        document["lines"] = lines

        order: CanonicalOrder | None = None
        if not problems:
            try:
                order = CanonicalOrder.model_validate(document)
            except ValidationError as exc:
                for error in exc.errors(include_url=False, include_input=False):
                    index, field = self._locate(tuple(error["loc"]), seen_at, origins)
                    problems.setdefault(index, []).append(
                        FieldIssue(field=field, code=str(error["type"]), message=str(error["msg"]))
                    )
        if order is not None:
            return Built(order=order)
        return Built(rejections=self._rejections(rows, problems))

    # --- helpers ---------------------------------------------------------------------------------

    def _value(
        self,
        values: Mapping[str, Any],
        column: str,
        problems: dict[int, list[FieldIssue]],
        index: int,
        prefix: str = "",
    ) -> str | None:
        try:
            return as_text(lookup(values, column, dotted=self.dotted))
        except TypeError as exc:
            problems.setdefault(index, []).append(
                FieldIssue(field=prefix + column, code="not_a_value", message=str(exc))
            )
            return None

    def _line_elements(
        self, values: Mapping[str, Any], index: int, problems: dict[int, list[FieldIssue]]
    ) -> list[tuple[Mapping[str, Any], str]]:
        path = self.mapping.lines_path
        if path is None:
            return [(values, "")]
        found = lookup(values, path, dotted=True)
        if not isinstance(found, list) or not all(isinstance(e, Mapping) for e in found):
            problems.setdefault(index, []).append(
                FieldIssue(field=path, code="lines_missing", message="expected an array of line objects")
            )
            return []
        return [(element, f"{path}[{k}].") for k, element in enumerate(found)]

    def _locate(
        self, loc: tuple[Any, ...], seen_at: dict[str, int], origins: list[tuple[int, str]]
    ) -> tuple[int, str]:
        """(row index, source field name) for a CanonicalOrder error location."""
        if loc and loc[0] == "lines" and len(loc) >= 2 and isinstance(loc[1], int) and loc[1] < len(origins):
            index, prefix = origins[loc[1]]
            rest = [str(p) for p in loc[2:]]
            target = "lines." + ".".join(rest) if rest else "lines.sku"
            column = self.mapping.fields.get(target)
            if column is None and not rest:
                column = self.mapping.fields.get("lines.name")
            return index, prefix + (column or target)
        parts = [str(p) for p in loc if not isinstance(p, int)]
        target = ".".join(parts) or "order"
        column = self.mapping.fields.get(target)
        return seen_at.get(target, 0), column or target

    @staticmethod
    def _rejections(rows: Sequence[Row], problems: dict[int, list[FieldIssue]]) -> list[RowRejection]:
        first_bad = min(problems) if problems else 0
        out = []
        for index, row in enumerate(rows):
            errors = problems.get(index) or [
                FieldIssue(
                    code=ORDER_REJECTED,
                    message=f"another row of order {row.order_id or '?'} is invalid "
                    f"({_where(rows[first_bad])})",
                )
            ]
            out.append(RowRejection(line=row.line, ref=row.ref, order_id=row.order_id, errors=errors))
        return out


def orphan_rejection(row: Row, id_column: str) -> RowRejection:
    """A row with no readable order number: rejected on its own."""
    errors = [row.problem] if row.problem is not None else []
    errors.append(FieldIssue(field=id_column, code="missing", message="no order number in this row"))
    return RowRejection(line=row.line, ref=row.ref, order_id=None, errors=errors)


def _get(document: Mapping[str, Any], target: str) -> Any:
    node: Any = document
    parts = target.split(".")
    for part in parts[1:] if parts[0] == "lines" else parts:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _where(row: Row) -> str:
    return row.ref or f"line {row.line}"
