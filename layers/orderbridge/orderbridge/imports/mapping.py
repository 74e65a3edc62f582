"""Rows (CSV) and records (JSON) to canonical orders, with every problem named in source terms.

A group is the adjacent rows that share one order number (`group_by`, else the order id).
Order-level fields come from the group's rows and must agree; each row (or each element of
`lines_path`) is one line. Validation is `CanonicalOrder`'s own; its errors are mapped back to the
line number and the source column, so a rejection reads `line 17, qty: Input should be greater
than or equal to 1`. Values never appear in messages (they may be an email address or a phone
number)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orderbridge.imports.config import MONEY_TARGETS, NAME_TARGETS, FieldMapping, ValueFormats, is_line_target
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


class TransformError(ValueError):
    """A value that the declared formats cannot read (the message never holds the value)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_CODE_AROUND = re.compile(r"^[A-Za-z]{3}\s*(?=[-+(0-9.,])|(?<=[0-9.,])\s*[A-Za-z]{3}$")


def _amount(text: str, formats: ValueFormats) -> str:
    """`1.234,90 €` -> `1234.90` with the declared separators; anything else is refused."""
    value = text.replace("\u00a0", " ").replace("\u202f", " ").strip()
    if formats.currency_symbols:
        value = "".join(c for c in value if unicodedata.category(c) != "Sc")
        value = _CODE_AROUND.sub("", value.strip()).strip()
    if formats.thousands != " ":
        value = value.replace(" ", "")
    t, d = re.escape(formats.thousands), re.escape(formats.decimal)
    grouped = rf"\d{{1,3}}(?:{t}\d{{3}})+|" if formats.thousands else ""
    if not re.fullmatch(rf"[+-]?(?:{grouped}\d+)(?:{d}\d*)?|[+-]?{d}\d+", value):
        raise TransformError("number_format", "not a number in the declared format")
    if formats.thousands:
        value = value.replace(formats.thousands, "")
    return value.replace(formats.decimal, ".")


def _date(text: str, formats: ValueFormats) -> str:
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for pattern in formats.dates:
            try:
                parsed = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if parsed is None:
        raise TransformError("date_format", "not a date in ISO 8601 or the declared formats")
    if parsed.tzinfo is None and formats.timezone:
        parsed = parsed.replace(tzinfo=ZoneInfo(formats.timezone))
    return parsed.isoformat()


def _country(text: str) -> str:
    if len(text) == 2 and text.isalpha():
        return text
    import pycountry

    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        try:
            found = pycountry.countries.search_fuzzy(text)
        except LookupError:
            found = []
        if len(found) == 1:
            return str(found[0].alpha_2)
        raise TransformError("country", "not a country name or ISO code pycountry knows") from None


def transform(target: str, text: str | None, formats: ValueFormats) -> str | None:
    """A source value as the mapping's declared formats say it is written, in the model's terms."""
    if text is None:
        return None
    if formats.excel_apostrophe and text.startswith("'"):
        text = text[1:].strip() or None
        if text is None:
            return None
    if text in formats.placeholders:
        return None
    if target in MONEY_TARGETS:
        return _amount(text, formats)
    if target == "lines.quantity":
        try:
            return _amount(text, formats)
        except TransformError:
            return text  # the model says why it is not a quantity

    if target == "placed_at":
        return _date(text, formats)
    if formats.country_names and target.endswith(".country"):
        return _country(text)
    return text


def split_name(full: str) -> tuple[str | None, str | None]:
    """ "Ada King Lovelace" -> ("Ada King", "Lovelace"); one word is a first name."""
    words = full.split()
    if len(words) <= 1:
        return (words[0] if words else None), None
    return " ".join(words[:-1]), words[-1]


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
        # (target, its columns in the order they are tried)
        self.order_fields = [(t, mapping.places(t)) for t in mapping.fields if not is_line_target(t)]
        self.line_fields = [(t, mapping.places(t)) for t in mapping.fields if is_line_target(t)]
        self.order_defaults = {t: v for t, v in mapping.defaults.items() if not is_line_target(t)}
        self.line_defaults = {t: v for t, v in mapping.defaults.items() if is_line_target(t)}
        self.group_columns = [mapping.group_by] if mapping.group_by else mapping.places("external_order_id")

    def order_id(self, values: Mapping[str, Any]) -> str | None:
        """The value that groups a row with its order's other rows (`group_by`, else the order id)."""
        return self._first(values, self.group_columns)

    def _first(self, values: Mapping[str, Any], columns: Sequence[str]) -> str | None:
        """The first of `columns` with a value in `values` (unreadable values count as none)."""
        for column in columns:
            try:
                text = as_text(lookup(values, column, dotted=self.dotted))
            except TypeError:
                continue
            if text is not None:
                return text
        return None

    def _chosen(self, rows: Sequence[Row], columns: list[str]) -> str:
        """Of an order-level field's columns, the first with a value in any row of the order (so
        an id present on the first row only is not replaced by the next column on the others)."""
        if len(columns) > 1:
            for column in columns:
                if any(self._first(row.values or {}, [column]) is not None for row in rows):
                    return column
        return columns[0]

    def build(self, rows: Sequence[Row]) -> Built:
        """One order from the rows of one group (same order number, adjacent)."""
        problems: dict[int, list[FieldIssue]] = {}  # row index -> issues
        document: dict[str, Any] = {"buyer": {}}
        seen_at: dict[str, int] = {}  # order-level target -> row index that set it
        lines: list[dict[str, Any]] = []
        origins: list[tuple[int, str]] = []  # per line: (row index, field prefix for error names)

        order_fields = [(t, self._chosen(rows, columns)) for t, columns in self.order_fields]
        for index, row in enumerate(rows):
            if row.problem is not None:
                problems.setdefault(index, []).append(row.problem)
            values = row.values or {}
            for target, column in order_fields:
                value = self._value(values, column, problems, index, target=target)
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
                for target, columns in self.line_fields:
                    column = next((c for c in columns if self._first(element, [c]) is not None), columns[0])
                    value = self._value(element, column, problems, index, prefix, target=target)
                    if value is not None:
                        _put(line, target, value)
                for target, value in self.line_defaults.items():
                    if _get(line, target) is None:
                        _put(line, target, value)
                if "gross" in line:
                    self._unit_price(line, index, prefix, problems)
                lines.append(line)
                origins.append((index, prefix))

        for target, value in self.order_defaults.items():
            if target not in seen_at:
                _put(document, target, value)
        for target in NAME_TARGETS:
            holder = document.get(target.split(".")[0])
            if isinstance(holder, dict) and "name" in holder:
                first, last = split_name(holder.pop("name"))
                if first and not holder.get("first_name"):
                    holder["first_name"] = first
                if last and not holder.get("last_name"):
                    holder["last_name"] = last
        for address in _ADDRESSES:
            if address in document and not any(document[address].values()):
                del document[address]
        document["lines"] = lines
        if "external_order_id" not in seen_at and "external_order_id" not in self.order_defaults:
            problems.setdefault(0, []).append(
                FieldIssue(
                    field=self.mapping.place_name("external_order_id"),
                    code="missing",
                    message="no order id in any row of this order",
                )
            )

        order: CanonicalOrder | None = None
        if not problems:
            try:
                order = CanonicalOrder.model_validate(document)
            except ValidationError as exc:
                for error in exc.errors(include_url=False, include_input=False):
                    loc = tuple(error["loc"])
                    if error["type"] == "total_mismatch":
                        loc = ("total",)
                    index, field = self._locate(loc, seen_at, origins)
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
        *,
        target: str = "",
    ) -> str | None:
        try:
            return transform(
                target, as_text(lookup(values, column, dotted=self.dotted)), self.mapping.formats
            )
        except TypeError as exc:
            problems.setdefault(index, []).append(
                FieldIssue(field=prefix + column, code="not_a_value", message=str(exc))
            )
        except TransformError as exc:
            problems.setdefault(index, []).append(
                FieldIssue(field=prefix + column, code=exc.code, message=str(exc))
            )
        return None

    def _unit_price(
        self, line: dict[str, Any], index: int, prefix: str, problems: dict[int, list[FieldIssue]]
    ) -> None:
        """unit_price from the line's gross (all units) when the source gives no unit price."""
        gross = line.pop("gross")
        if line.get("unit_price") is not None:
            return
        try:
            quantity = int(line.get("quantity") or "")
            unit = Decimal(gross) / quantity
        except (ValueError, ArithmeticError):
            return  # the quantity's own error is reported by the model
        if unit != unit.quantize(Decimal("0.0001")):
            column = prefix + (self.mapping.place_name("lines.gross") or "gross")
            problems.setdefault(index, []).append(
                FieldIssue(
                    field=column, code="unit_price", message="the line's total is not a whole unit price"
                )
            )
            return
        line["unit_price"] = format(unit.normalize(), "f")

    def filtered(self, rows: Sequence[Row]) -> bool:
        """The order is left out on purpose: a row filter matches one of its rows."""
        for rule in self.mapping.skip:
            for row in rows:
                try:
                    value = as_text(lookup(row.values or {}, rule.column, dotted=self.dotted))
                except TypeError:
                    continue
                if rule.matches(value):
                    return True
        return False

    def _line_elements(
        self, values: Mapping[str, Any], index: int, problems: dict[int, list[FieldIssue]]
    ) -> list[tuple[Mapping[str, Any], str]]:
        cells = self.mapping.line_cells
        if cells is not None:
            return self._cell_items(values, index, problems)
        if any("{n}" in column for _, columns in self.line_fields for column in columns):
            return self._column_groups(values, index, problems)
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

    def _column_groups(
        self, values: Mapping[str, Any], index: int, problems: dict[int, list[FieldIssue]]
    ) -> list[tuple[Mapping[str, Any], str]]:
        """Repeated column groups: `Item {n} SKU`, `Item {n} Qty` for n = 1, 2, ... while the header
        has them; a group with every column empty is no line."""
        flat = [c for _, columns in self.line_fields for c in columns]
        templates = [c for c in flat if "{n}" in c]
        out: list[tuple[Mapping[str, Any], str]] = []
        n = 1
        while any(t.replace("{n}", str(n)) in values for t in templates):
            group = {t: values.get(t.replace("{n}", str(n))) for t in templates}
            if any(isinstance(v, str) and v.strip() for v in group.values()):
                plain = {c: values.get(c) for c in flat if "{n}" not in c}
                out.append((plain | group, f"group {n}: "))
            n += 1
        if not out:
            problems.setdefault(index, []).append(
                FieldIssue(field=templates[0], code="lines_missing", message="no item in any column group")
            )
        return out

    def _cell_items(
        self, values: Mapping[str, Any], index: int, problems: dict[int, list[FieldIssue]]
    ) -> list[tuple[Mapping[str, Any], str]]:
        cells = self.mapping.line_cells
        assert cells is not None
        ahead = rf"(?=\s*(?:{cells.key})\s*{re.escape(cells.key_value)})"
        out: list[tuple[Mapping[str, Any], str]] = []
        for column in cells.cells(values):
            text = values.get(column)
            if not isinstance(text, str) or not text.strip():
                continue
            parts = re.split(re.escape(cells.items) + ahead, text) if cells.items else [text]
            for k, part in enumerate(parts):
                item: dict[str, str] = {}
                for pair in re.split(re.escape(cells.pairs) + ahead, part):
                    key, sep, value = pair.partition(cells.key_value)
                    if not sep:
                        problems.setdefault(index, []).append(
                            FieldIssue(
                                field=column, code="item_format", message="an item part is not key:value"
                            )
                        )
                        continue
                    item[key.strip()] = value.strip()
                out.append((item, f"{column}[{k}]." if cells.items else f"{column}."))
        if not out:
            problems.setdefault(index, []).append(
                FieldIssue(
                    field=", ".join(cells.cells(values)) or "items", code="lines_missing", message="no items"
                )
            )
        return out

    def _locate(
        self, loc: tuple[Any, ...], seen_at: dict[str, int], origins: list[tuple[int, str]]
    ) -> tuple[int, str]:
        """(row index, source field name) for a CanonicalOrder error location."""
        if loc and loc[0] == "lines" and len(loc) >= 2 and isinstance(loc[1], int) and loc[1] < len(origins):
            index, prefix = origins[loc[1]]
            rest = [str(p) for p in loc[2:]]
            target = "lines." + ".".join(rest) if rest else "lines.sku"
            column = self.mapping.place_name(target)
            if column is None and not rest:
                column = self.mapping.place_name("lines.name")
            return index, prefix + (column or target)
        parts = [str(p) for p in loc if not isinstance(p, int)]
        target = ".".join(parts) or "order"
        column = self.mapping.place_name(target)
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
    """A row with no readable order number (`id_column`: the group column): rejected on its own."""
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
