"""One helper that keeps only what is known to be safe from anything order-shaped before it is logged.

Logs keep ids (tracking id, source, order id) and codes only. When a structure has to be logged to
explain a failure (a rejected payload at DEBUG, a provider's refusal), it goes through `mask_pii`
first. It is an allow-list, not a deny-list: a value is kept only under a field name known to be
safe (ids, codes, counts, SKUs, quantities, currency, amounts, field names of errors), and only as a
short scalar; every other value, at any depth and in any shape (canonical, form, Shopify, provider),
becomes `MASK`. A field name nobody listed (a free-text property, a new field of a sender) is not
kept either, so a new field is masked until someone decides it is safe.

It never raises and never recurses: a hostile structure (deep, huge, cyclic, unserialisable) gives
a bounded, masked copy, never an exception in the request that logs it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

MASK = "*****"

# Values kept as they are (scalars only, strings cut to MAX_TEXT).
SAFE_FIELDS: frozenset[str] = frozenset(
    {
        # ids
        "id",
        "tracking_id",
        "submission_id",
        "external_order_id",
        "provider_order_id",
        "order_id",
        "event_id",
        "message_id",
        "product_id",
        "variant_id",
        "form_key",
        "source",
        "route",
        "destination",
        "provider",
        "shop",
        # codes and kinds
        "code",
        "error_code",
        "status",
        "type",
        "field",  # the field name of an error (its message may echo a value: masked)
        "test",
        "taxes_included",
        "mode",
        # goods and money
        "sku",
        "quantity",
        "count",
        "currency",
        "unit_price",
        "line_price",
        "price",
        "discount",
        "tax",
        "subtotal",
        "subtotal_price",
        "order_discount",
        "shipping_total",
        "shipping_tax",
        "total_tax",
        "total",
        "total_price",
        "amount",
    }
)
# Containers whose members are looked at one by one (their values are masked unless safe).
STRUCTURE_FIELDS: frozenset[str] = frozenset(
    {
        "order",
        "buyer",
        "billing_address",
        "shipping_address",
        "address",
        "customer",
        "lines",
        "line_items",
        "items",
        "shipping_lines",
        "tax_lines",
        "discount_allocations",
        "fields",
        "error",
        "errors",
        "destinations",
        "data",
        "metadata",
        "options",
        "properties",
    }
)
# Names that are not safe, but harmless as names: kept as keys (with the value masked) so the
# log still shows which fields were there.
KNOWN_FIELDS: frozenset[str] = frozenset(
    {
        "email",
        "contact_email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "title",
        "variant_title",
        "company",
        "address1",
        "address2",
        "street",
        "city",
        "province",
        "province_code",
        "zip",
        "postcode",
        "country",
        "country_code",
        "coupon",
        "notes",
        "note",
        "message",
        "ip",
        "ip_address",
        "browser_ip",
        "client_ip",
        "source_ip",
        "user_agent",
        "payment_method",
        "placed_at",
        "created_at",
        "website",
        "value",
    }
)
# Subtrees that hold what a buyer typed even under safe-looking names (a coupon's `code`).
MASKED_SUBTREES: frozenset[str] = frozenset({"discount_codes", "discount_applications", "note_attributes"})

MAX_TEXT = 128  # a kept string longer than this is cut
MAX_DEPTH = 16  # deeper than this: masked
MAX_NODES = 2000  # more members than this in all: the rest is masked


def mask_pii(data: Any) -> Any:
    """A copy of `data` (dict, list, or JSON text) with only safe fields kept; never raises."""
    try:
        if isinstance(data, (bytes, str)):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                return MASK  # unparseable text might be anything: log none of it
        if not isinstance(data, (dict, list, tuple)):
            return _scalar(data) if data is None or isinstance(data, (bool, int, float, Decimal)) else MASK
        return _walk(data)
    except Exception:  # never let masking fail, nor fail open: log nothing of the structure instead
        return MASK


def _scalar(value: Any) -> Any:
    """A value under a safe name: short scalars only."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return value[:MAX_TEXT]
    return MASK  # a structure under a safe name (an "id" holding an object) is not a scalar


def _walk(root: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> Any:
    """Iterative copy: containers under structural names are entered, safe scalars kept, all else masked."""
    out: Any = {} if isinstance(root, dict) else []
    stack: list[tuple[Any, Any, int]] = [(root, out, 1)]
    seen = 0
    while stack:
        node, copy, depth = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            seen += 1
            if seen > MAX_NODES:
                _put(copy, MASK, MASK)
                stack.clear()
                break
            name = key if isinstance(key, str) else None
            if isinstance(copy, list):  # a list member: judged by the name of the list itself
                name = None
            elif name not in SAFE_FIELDS | STRUCTURE_FIELDS | KNOWN_FIELDS | MASKED_SUBTREES:
                _put(copy, MASK, MASK)  # a name nobody listed may itself be what a buyer typed
                continue
            container = isinstance(value, (dict, list, tuple))
            if name in MASKED_SUBTREES:
                _put(copy, key, MASK)
            elif container and (name is None or name in STRUCTURE_FIELDS):
                if depth >= MAX_DEPTH:
                    _put(copy, key, MASK)
                    continue
                child: Any = {} if isinstance(value, dict) else []
                _put(copy, key, child)
                stack.append((value, child, depth + 1))
            elif name in SAFE_FIELDS:
                _put(copy, key, _scalar(value))
            else:
                _put(copy, key, MASK)
    return out


def _put(copy: Any, key: Any, value: Any) -> None:
    if isinstance(copy, list):
        copy.append(value)
    else:
        copy[key] = value
