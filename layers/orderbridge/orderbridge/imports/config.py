"""The `imports` section of the configuration document: where orders are pulled from, and how a
source's rows or records map onto the canonical order (`orderbridge.models.order.CanonicalOrder`).

A mapping names, for each canonical field it fills, the column (CSV) or dotted path (JSON) that
holds the value. Rows that share an order number and follow one another form one order: the
order-level fields come from its rows (they must agree), each row contributes one line. In JSON,
`lines_path` may instead name an array of line objects inside each record. See docs/imports.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from orderbridge.models.names import Name, Shop
from orderbridge.settings import secret_names_in

_ADDRESS = ("first_name", "last_name", "company", "address1", "address2", "city", "province", "zip")
ORDER_TARGETS: frozenset[str] = frozenset(
    {
        "external_order_id",
        "currency",
        "coupon",
        "notes",
        "payment_method",
        "shipping_total",
        "shipping_tax",
        "order_discount",
        "total_tax",
        "taxes_included",
        "total",
        "test",
        "placed_at",
        "buyer.email",
        "buyer.first_name",
        "buyer.last_name",
        "buyer.phone",
        *(
            f"{a}.{f}"
            for a in ("billing_address", "shipping_address")
            for f in (*_ADDRESS, "country", "phone")
        ),
    }
)
LINE_TARGETS: frozenset[str] = frozenset(
    {
        "lines.gross",  # the line's price for all units before discounts: unit_price = gross / quantity
        "lines.sku",
        "lines.name",
        "lines.variant_title",
        "lines.quantity",
        "lines.unit_price",
        "lines.discount",
        "lines.tax",
    }
)
# Full names split into first and last name (the last word is the last name).
NAME_TARGETS: frozenset[str] = frozenset({"buyer.name", "billing_address.name", "shipping_address.name"})
ORDER_TARGETS = ORDER_TARGETS | NAME_TARGETS
MONEY_TARGETS: frozenset[str] = frozenset(
    {
        "shipping_total",
        "shipping_tax",
        "order_discount",
        "total_tax",
        "total",
        "lines.unit_price",
        "lines.gross",
        "lines.discount",
        "lines.tax",
    }
)
_FREE_FORM = re.compile(r"^(metadata|lines\.options)\.[A-Za-z0-9_-]{1,40}$")


def is_line_target(target: str) -> bool:
    return target.startswith("lines.")


def valid_target(target: str) -> bool:
    return target in ORDER_TARGETS or target in LINE_TARGETS or bool(_FREE_FORM.match(target))


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValueFormats(_Config):
    """How values are written in the source: declared, never guessed."""

    decimal: Literal[".", ","] = Field(
        default=".", description="Decimal separator of amounts and quantities (`,` for 1.234,56)."
    )
    thousands: Literal["", ",", ".", " ", "'"] = Field(
        default="", description="Thousands separator of amounts, removed (`.` for 1.234,56)."
    )
    currency_symbols: bool = Field(
        default=True,
        description="Amounts may carry a currency symbol or code (`€12.50`, `12.50 USD`): removed.",
    )
    dates: list[Annotated[str, StringConstraints(min_length=2, max_length=60)]] = Field(
        default_factory=list,
        description="strptime formats of `placed_at`, tried in order after ISO 8601: "
        "`%Y-%m-%d %H:%M:%S %z` (Shopify's `Created at`), `%d/%m/%Y`.",
    )
    timezone: str | None = Field(default=None, description="IANA zone of dates without an offset.")
    country_names: bool = Field(
        default=False,
        description="Countries may be names (`United States`, `Germany`): ISO codes via pycountry.",
    )
    placeholders: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=list, description="Values that mean empty (`-`, `N/A`), in any column."
    )
    excel_apostrophe: bool = Field(
        default=False, description="Strip the leading `'` Excel keeps on numbers stored as text (`'4001`)."
    )

    @model_validator(mode="after")
    def _checks(self) -> ValueFormats:
        if self.thousands and self.thousands == self.decimal:
            raise ValueError("thousands and decimal separators must differ")
        if self.timezone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self


class RowFilter(_Config):
    """Orders left out on purpose (voided, cancelled): counted as skipped (and filtered), never created."""

    column: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    values: list[str] | None = Field(
        default=None, description="Skip the order when the column holds one of these (case-insensitive)."
    )
    not_empty: bool = Field(default=False, description="Skip the order when the column has any value.")

    @model_validator(mode="after")
    def _one(self) -> RowFilter:
        if (self.values is None) == (not self.not_empty):
            raise ValueError("a row filter needs either values or not_empty")
        return self

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.not_empty:
            return True
        return value.casefold() in {v.casefold() for v in self.values or ()}


class LineCells(_Config):
    """Items written inside cells: repeated column groups (`line_item_1`, `line_item_2`, ... each
    `name:Mug|sku:MUG|quantity:1`, WooCommerce) or several items in one cell (BigCommerce's
    `Product Details`). `lines.*` fields then name keys inside an item, not columns."""

    columns: list[str] = Field(default_factory=list, description="The cells holding items, in order.")
    pattern: str | None = Field(
        default=None, description="Numbered columns, `{n}` from 1 while the header has them: `line_item_{n}`."
    )
    items: str | None = Field(default=None, description="Separator between items inside one cell (`|`).")
    pairs: str = Field(default="|", min_length=1, description="Separator between an item's key:value pairs.")
    key_value: str = Field(default=":", min_length=1, description="Separator between a key and its value.")
    key: str = Field(
        default=r"[A-Za-z_][A-Za-z0-9_]*",
        description="What a key looks like (regex): a separator counts only before `key` + `key_value`, "
        "so values may contain the separators (`Size: S (4)`).",
    )

    @model_validator(mode="after")
    def _where(self) -> LineCells:
        if bool(self.columns) == bool(self.pattern):
            raise ValueError("line_cells needs either columns or a pattern")
        if self.pattern is not None and "{n}" not in self.pattern:
            raise ValueError("line_cells.pattern must contain {n}")
        try:
            re.compile(self.key)
        except re.error:
            raise ValueError("line_cells.key is not a regular expression") from None
        return self

    def cells(self, header: Any) -> list[str]:
        if self.columns:
            return list(self.columns)
        names, n = [], 1
        while self.pattern.format(n=n) in header:  # type: ignore[union-attr]
            names.append(self.pattern.format(n=n))  # type: ignore[union-attr]
            n += 1
        return names


Column = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class FieldMapping(_Config):
    """Canonical field -> source column (CSV) or dotted path (JSON, e.g. `customer.email`), or a
    list of them: the first that has a value (for an order-level field: in any row of the order)."""

    fields: dict[str, Column | Annotated[list[Column], Field(min_length=1, max_length=5)]] = Field(
        description="Canonical field (e.g. `buyer.email`, `lines.sku`, `metadata.channel`) -> where its "
        'value is, or a list of places: the first that has a value (`["Id", "Name"]`: the id '
        "when the export has it, else the order number). `external_order_id` is required: it "
        "identifies the order for good (and groups the rows, unless `group_by`)."
    )
    group_by: Column | None = Field(
        default=None,
        description="The column every row of one order repeats; adjacent rows with the same value are "
        "one order. Default: `external_order_id`'s (the first of its list that has a value). Needed "
        "when the id is on an order's first row only (Shopify's export: `Id`; group by `Name`).",
    )
    lines_path: str | None = Field(
        default=None,
        description="JSON only: the array of line objects in each record; `lines.*` paths are then "
        "relative to one element. Without it each record (row) is one line.",
    )
    defaults: dict[str, Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=dict, description="Canonical field -> constant used when the source has no value."
    )

    preset: str | None = Field(
        default=None,
        description="A platform layout (`shopify-orders-export`, `woocommerce-orders`, "
        "`bigcommerce-orders-export`): its fields, formats, filters and optional columns; anything given "
        "here as well overrides or adds to it.",
    )
    line_cells: LineCells | None = None
    optional: list[str] = Field(
        default_factory=list, description="Columns the header may lack (their values are then empty)."
    )
    formats: ValueFormats = Field(default_factory=ValueFormats)
    skip: list[RowFilter] = Field(
        default_factory=list,
        description="Orders to leave out, e.g. Financial Status voided, Cancelled at set.",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("preset"):
            return data
        from orderbridge.imports.presets import load_preset

        base = load_preset(str(data["preset"]))
        merged = dict(base) | {k: v for k, v in data.items() if k not in ("fields", "defaults", "formats")}
        for key in ("fields", "defaults", "formats"):
            merged[key] = {**base.get(key, {}), **(data.get(key) or {})}
        return merged

    @model_validator(mode="after")
    def _targets(self) -> FieldMapping:
        unknown = sorted(t for t in (*self.fields, *self.defaults) if not valid_target(t))
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        if "external_order_id" not in self.fields:
            raise ValueError("the mapping must name the order number column: fields.external_order_id")
        given = set(self.fields) | set(self.defaults)
        if "lines.quantity" not in given or not given & {"lines.sku", "lines.name"}:
            raise ValueError("the mapping must fill lines.quantity and lines.sku or lines.name")
        return self

    def places(self, target: str) -> list[str]:
        """The columns (paths) of one canonical field, in the order they are tried."""
        given = self.fields.get(target)
        if given is None:
            return []
        return [given] if isinstance(given, str) else list(given)

    def place_name(self, target: str) -> str | None:
        """How a field's column is named in a rejection: `Total`, or `Id or Name` for a list."""
        return " or ".join(self.places(target)) or None

    def group_column(self) -> str:
        """The column that tells one order's rows from the next (named when a row has none)."""
        return self.group_by or self.place_name("external_order_id") or "external_order_id"

    def columns(self) -> list[str]:
        """The source columns the mapping reads (CSV: each must be in the header)."""
        in_cells = self.line_cells is not None
        named = {
            c.replace("{n}", "1")
            for t in self.fields
            if not (in_cells and is_line_target(t))
            for c in self.places(t)
        }
        if self.group_by:
            named.add(self.group_by)
        named |= {f.column for f in self.skip}
        if self.line_cells is not None:
            named |= set(self.line_cells.columns)
            if self.line_cells.pattern:
                named.add(self.line_cells.pattern.format(n=1))
        return sorted(named)

    def required_columns(self) -> list[str]:
        """The columns the header must have (the others are optional)."""
        return [c for c in self.columns() if c not in set(self.optional)]


class S3Source(_Config):
    """New files under a prefix of the import bucket."""

    kind: Literal["s3"]
    route: Name
    shop: Shop = None
    prefix: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        description="Key prefix to watch, e.g. `incoming/erp/`. Keys under `<prefix>processed/` are ignored."
    )
    bucket: str | None = Field(default=None, description="Default: the stack's import bucket.")
    format: Literal["auto", "csv", "jsonl"] = Field(
        default="auto", description="auto: by extension (.csv; .jsonl/.ndjson)."
    )
    delimiter: Annotated[str, StringConstraints(min_length=1, max_length=1)] = ","
    encoding: str = Field(
        default="utf-8",
        description="The files' text encoding: `utf-8` (a BOM is fine), `cp1252`, `latin-1`, ..., or "
        "`auto` (UTF-8 where it decodes, else Windows-1252, line by line)",
    )
    mapping: FieldMapping

    @model_validator(mode="after")
    def _encoding(self) -> S3Source:
        import codecs

        if self.encoding == "auto":
            return self
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self

    enabled: bool = True


class FeedAuth(_Config):
    """How the secret (JSON in Secrets Manager) becomes a request header."""

    type: Literal["bearer", "header", "basic", "none"] = "bearer"
    header: str = Field(default="Authorization", description="type=header: the header's name.")
    key: str = Field(default="token", description="bearer/header: the secret's JSON key holding the value.")


class FeedPaging(_Config):
    """Where the orders and the next cursor are in a page, and the query parameters to send."""

    items: str = Field(default="orders", description="Dotted path of the array of orders in a page.")
    next_cursor: str | None = Field(
        default="next_cursor",
        description="Dotted path of the next page's cursor (empty/null: last page). None: no cursors; "
        "pages are walked by updated_since alone (the feed must sort by its updated field, ascending).",
    )
    cursor_param: str = "cursor"
    since_param: str = "updated_since"
    updated_at: str = Field(default="updated_at", description="Dotted path of an order's last update time.")
    page_size_param: str | None = "limit"
    page_size: int = Field(default=100, ge=1, le=1000)
    overlap_seconds: int = Field(
        default=0, ge=0, description="Ask for orders updated this long before the checkpoint (clock skew)."
    )
    style: Literal["cursor", "link", "page", "since"] | None = Field(
        default=None,
        description="How pages follow each other: `cursor` (in the body, at next_cursor), `link` (an HTTP "
        '`Link: <url>; rel="next"` header, Shopify), `page` (page numbers, with a total-pages header, '
        "WooCommerce), `since` (updated_since moves forward; ascending feeds only; with `page_param` "
        "orders sharing one time are paged through). Default: cursor, or since when next_cursor is null.",
    )
    page_param: str | None = Field(default=None, description="Query parameter of the page number (`page`).")
    total_pages_header: str | None = Field(
        default=None, description="Response header with the number of pages (`X-WP-TotalPages`)."
    )
    sort: Literal["asc", "desc"] = Field(
        default="asc", description="The feed's order by update time: oldest first (asc) or newest first."
    )
    since_exclusive: bool = Field(
        default=False,
        description="The feed's since parameter excludes its own second (WooCommerce `modified_after`): "
        "the importer then asks for one second earlier, and the boundary orders come again as known.",
    )
    params: dict[str, str] = Field(
        default_factory=dict, description="Constant query parameters (a sort order, `status=any`)."
    )

    preset: str | None = Field(
        default=None,
        description="A platform's order API: `shopify-orders-api`, `woocommerce-orders-api` (its "
        "parameters, sort, paging and boundary handling); fields given here as well override it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("preset"):
            return data
        from orderbridge.imports.presets import load_paging

        base = load_paging(str(data["preset"]))
        merged = base | {k: v for k, v in data.items() if k != "params"}
        merged["params"] = {**base.get("params", {}), **(data.get("params") or {})}
        return merged

    @model_validator(mode="after")
    def _style(self) -> FeedPaging:
        if self.style is None:
            self.style = "cursor" if self.next_cursor else "since"
        if self.style == "cursor" and not self.next_cursor:
            raise ValueError("paging style cursor needs next_cursor")
        if self.style == "page" and not self.page_param:
            raise ValueError("paging style page needs page_param")
        if self.style == "since" and self.sort != "asc":
            raise ValueError("paging style since needs a feed sorted oldest first (sort asc)")
        return self


class FeedSource(_Config):
    """A storefront's "orders since" JSON API."""

    kind: Literal["feed"]
    route: Name
    shop: Shop = None
    url: AnyHttpUrl
    secret_id: str | None = Field(
        default=None,
        description="Secrets Manager id under `{RESOURCE_PREFIX}/imports/` (default `orderbridge`).",
    )
    auth: FeedAuth = Field(default_factory=FeedAuth)
    paging: FeedPaging = Field(default_factory=FeedPaging)
    mapping: FieldMapping
    start_since: str | None = Field(default=None, description="updated_since for the very first run.")
    timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    enabled: bool = True

    @model_validator(mode="after")
    def _secret(self, info: ValidationInfo) -> FeedSource:
        prefix = secret_names_in(info.context).imports  # the prefix in effect (validation context)
        if self.secret_id is not None and not self.secret_id.startswith(prefix):
            raise ValueError(f"secret_id must start with {prefix!r} (the importer may read only those)")
        if self.auth.type != "none" and self.secret_id is None:
            raise ValueError(f"auth type {self.auth.type!r} needs a secret_id")
        return self


ImportSource = Annotated[S3Source | FeedSource, Field(discriminator="kind")]
