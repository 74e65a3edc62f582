"""The `imports` section of the configuration document: where orders are pulled from, and how a
source's rows or records map onto the canonical order (`orderbridge.models.order.CanonicalOrder`).

A mapping names, for each canonical field it fills, the column (CSV) or dotted path (JSON) that
holds the value. Rows that share an order number and follow one another form one order: the
order-level fields come from its rows (they must agree), each row contributes one line. In JSON,
`lines_path` may instead name an array of line objects inside each record. See docs/imports.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from orderbridge.models.names import Name, Shop

SECRET_PREFIX = "orderbridge/imports/"

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
        "lines.sku",
        "lines.name",
        "lines.variant_title",
        "lines.quantity",
        "lines.unit_price",
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


class FieldMapping(_Config):
    """Canonical field -> source column (CSV) or dotted path (JSON, e.g. `customer.email`)."""

    fields: dict[str, Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        description="Canonical field (e.g. `buyer.email`, `lines.sku`, `metadata.channel`) -> where its "
        "value is. `external_order_id` is required: it is the order number rows are grouped by."
    )
    lines_path: str | None = Field(
        default=None,
        description="JSON only: the array of line objects in each record; `lines.*` paths are then "
        "relative to one element. Without it each record (row) is one line.",
    )
    defaults: dict[str, Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=dict, description="Canonical field -> constant used when the source has no value."
    )

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

    def columns(self) -> list[str]:
        """The source columns the mapping reads (CSV: each must be in the header)."""
        return sorted(set(self.fields.values()))


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
    mapping: FieldMapping
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
    secret_id: str | None = Field(default=None, description=f"Secrets Manager id under {SECRET_PREFIX}.")
    auth: FeedAuth = Field(default_factory=FeedAuth)
    paging: FeedPaging = Field(default_factory=FeedPaging)
    mapping: FieldMapping
    start_since: str | None = Field(default=None, description="updated_since for the very first run.")
    timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    enabled: bool = True

    @model_validator(mode="after")
    def _secret(self) -> FeedSource:
        if self.secret_id is not None and not self.secret_id.startswith(SECRET_PREFIX):
            raise ValueError(
                f"secret_id must start with {SECRET_PREFIX!r} (the importer may read only those)"
            )
        if self.auth.type != "none" and self.secret_id is None:
            raise ValueError(f"auth type {self.auth.type!r} needs a secret_id")
        return self


ImportSource = Annotated[S3Source | FeedSource, Field(discriminator="kind")]
