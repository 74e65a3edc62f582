"""A storefront form's prices come from the server: the route's `items`, never the buyer.

The form page shows each item's name and price from the route's configuration
(`Route.items`, `orderbridge.models.config.CatalogItem`); when the form is posted, this module
puts the same prices on the order. Nothing the buyer sends can set a price: money fields on the
posted order (a tampered `items[0][unit_price]`, a `currency`, a `total`) are dropped and replaced
by the server's, and a line the route does not sell is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orderbridge.exceptions import IntakeRejectedError
from orderbridge.models.config import CatalogItem

UNKNOWN_ITEM = "UNKNOWN_ITEM"
# Money of the canonical order that a form never supplies: only the server's catalog prices.
ORDER_MONEY_FIELDS = (
    "currency",
    "order_discount",
    "shipping_total",
    "shipping_tax",
    "taxes_included",
    "total_tax",
    "total",
)
LINE_MONEY_FIELDS = ("unit_price", "line_price", "discount", "tax")


def price_form_order(
    raw_order: Mapping[str, Any],
    items: Mapping[str, CatalogItem],
    field_name: Callable[[str], str] = str,
) -> dict[str, Any]:
    """The form's order (`mapping.from_form`'s dict) priced by the route's `items`.

    `raw_order`: a dict shaped like `CanonicalOrder` (not yet validated) whose `lines` are dicts
    with `sku`, `quantity` and perhaps `name`. `items`: `Route.items`, SKU -> CatalogItem (all in
    one currency; the configuration model guarantees it).

    Returns a new dict (the input is not changed): every order- and line-level money field the
    buyer may have sent (`ORDER_MONEY_FIELDS`, `LINE_MONEY_FIELDS`) removed; then, when `items` is
    not empty, `currency` set to the items' currency and each line's `unit_price` and `name` set
    from its SKU's item (Decimal, in the currency's minor units). With empty `items` (a route
    without prices) the lines stay unpriced, as before prices existed.

    Raises IntakeRejectedError 422 `VALIDATION_FAILED` when `items` is not empty and a line's SKU
    is not one of them, or a line has no SKU (a custom product by name has no server price); one
    field error per such line, `{"field": field_name("lines.<i>.sku"), "code": "UNKNOWN_ITEM",
    "message": ...}`: the canonical path by default, the sender's own name (`items[7][sku]`) with
    the intake's `mapping.FormFieldNames` of the post.
    """
    order = {k: v for k, v in raw_order.items() if k not in ORDER_MONEY_FIELDS}
    if not isinstance(raw_order.get("lines"), list):
        return order  # no lines to price: the order model reports what is wrong
    lines = [
        {k: v for k, v in line.items() if k not in LINE_MONEY_FIELDS} if isinstance(line, Mapping) else line
        for line in raw_order["lines"]
    ]
    if not items:
        return order | {"lines": lines}
    errors = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            continue  # not a line at all: the order model reports it
        sku = line.get("sku")
        item = items.get(sku.strip()) if isinstance(sku, str) else None
        if item is None:
            shown = str(sku if isinstance(sku, str) and sku else line.get("name") or "This item")
            errors.append(
                {
                    "field": field_name(f"lines.{i}.sku"),
                    "code": UNKNOWN_ITEM,
                    "message": f"{shown[:80]} is not sold here; choose an item from the list.",
                }
            )
            continue
        line["sku"] = sku.strip()
        line["name"] = item.name
        line["unit_price"] = item.unit_price
    if errors:
        raise IntakeRejectedError(422, "VALIDATION_FAILED", "an item is not sold on this form", errors)
    currency = next(iter(items.values())).currency
    return order | {"currency": currency, "lines": lines}
