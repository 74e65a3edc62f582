"""Turning what storefronts send into the canonical order.

Each mapper returns a plain dict shaped like `CanonicalOrder`; validation happens once, in the
service, so every way in reports field errors the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from orderbridge.exceptions import AmbiguousFormFieldError, IntakeRejectedError
from orderbridge.models.order import strip_control


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


# --- Shopify orders/create --------------------------------------------------------------------
# Field meanings: Shopify's REST Admin API Order resource (line_items[].price, discount_allocations,
# tax_lines, properties; shipping_lines; subtotal_price, total_tax, taxes_included, total_price,
# currency, test). A signed sender cannot fix its payload, so strings are cleaned here (control
# characters removed) rather than refused.


def _str(value: Any) -> str | None:
    """A payload string, cleaned: control characters removed, blank becomes None."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = strip_control(str(value)).strip()
    return text or None


def _amount(value: Any) -> Decimal | None:
    """A Shopify money string as an exact Decimal (None if absent or not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _sum(items: Any, key: str) -> Decimal:
    return sum((_amount(i.get(key)) or Decimal(0) for i in items or [] if isinstance(i, dict)), Decimal(0))


def platform_address(
    a: Any, keys: Mapping[str, str | tuple[str, ...]], *, any_of: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """A platform's address object as the canonical address's fields: `keys` maps each canonical
    field to the platform's key (a tuple: the first with a value wins). None when `a` is not an
    object, is empty, or has a value under none of `any_of` (its keys that make an address)."""
    if not isinstance(a, Mapping) or not a or (any_of and not any(a.get(k) for k in any_of)):
        return None
    names = {field: (key,) if isinstance(key, str) else key for field, key in keys.items()}
    return _clean({field: next(filter(None, map(_str, map(a.get, ks))), None) for field, ks in names.items()})


#: canonical address field -> the platform's key(s); the same names on every platform
COMMON_ADDRESS_KEYS: dict[str, str | tuple[str, ...]] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "company": "company",
    "city": "city",
    "phone": "phone",
}
#: Shopify's MailingAddress (REST Admin API Order: billing_address, shipping_address)
SHOPIFY_ADDRESS_KEYS = COMMON_ADDRESS_KEYS | {
    "address1": "address1",
    "address2": "address2",
    "province": ("province_code", "province"),
    "zip": "zip",
    "country": "country_code",
}


def _shopify_address(a: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return platform_address(a, SHOPIFY_ADDRESS_KEYS)


def _shopify_line(item: Mapping[str, Any]) -> dict[str, Any]:
    properties = {
        str(_str(p.get("name")))[:255]: str(_str(p.get("value")))
        for p in item.get("properties") or []
        if isinstance(p, dict) and _str(p.get("name")) and _str(p.get("value"))
    }
    return _clean(
        {
            "sku": _str(item.get("sku")),
            # `name` is "Title - Variant"; `title` alone loses the variant ("Fine / Bordeaux")
            "name": _str(item.get("name")) or _str(item.get("title")),
            "variant_title": _str(item.get("variant_title")),
            "quantity": item.get("quantity"),
            "unit_price": _amount(item.get("price")),
            "discount": _sum(item.get("discount_allocations"), "amount") or None,
            "tax": _sum(item.get("tax_lines"), "price") or None,
            "options": properties,
        }
    )


def from_shopify(payload: Any) -> dict[str, Any]:
    """A Shopify `orders/create` webhook payload (REST Admin API order object), money exact.

    The order discount is what Shopify's `subtotal_price` (lines after all discounts) leaves
    unexplained by the lines' own `discount_allocations`, so the canonical subtotal is Shopify's.
    """
    if not isinstance(payload, dict):
        raise IntakeRejectedError(400, "MALFORMED_BODY", "a Shopify order payload is a JSON object")
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    items = [i for i in payload.get("line_items") or [] if isinstance(i, dict)]
    lines = [_shopify_line(i) for i in items]
    shipping_lines = [s for s in payload.get("shipping_lines") or [] if isinstance(s, dict)]
    shipping = sum(
        (
            (_amount(s.get("price")) or Decimal(0)) - _sum(s.get("discount_allocations"), "amount")
            for s in shipping_lines
        ),
        Decimal(0),
    )
    shipping_tax = sum((_sum(s.get("tax_lines"), "price") for s in shipping_lines), Decimal(0))
    order_discount = None
    subtotal = _amount(payload.get("subtotal_price"))
    quantities = [line.get("quantity") for line in lines]
    if (
        subtotal is not None
        and all("unit_price" in line for line in lines)
        and all(isinstance(q, int) and not isinstance(q, bool) for q in quantities)
    ):
        lines_net = sum(
            (
                line["unit_price"] * q - line.get("discount", Decimal(0))
                for line, q in zip(lines, quantities, strict=True)
            ),
            Decimal(0),
        )
        if lines_net > subtotal:
            order_discount = lines_net - subtotal
    codes = [_str(d.get("code")) for d in payload.get("discount_codes") or [] if isinstance(d, dict)]
    gateways = payload.get("payment_gateway_names") or []
    client = payload.get("client_details") if isinstance(payload.get("client_details"), dict) else {}
    billing = payload.get("billing_address") if isinstance(payload.get("billing_address"), dict) else {}
    buyer = _clean(
        {
            "email": _str(payload.get("email"))
            or _str(payload.get("contact_email"))
            or _str(customer.get("email")),
            "first_name": _str(customer.get("first_name")) or _str(billing.get("first_name")),
            "last_name": _str(customer.get("last_name")) or _str(billing.get("last_name")),
            "phone": _str(payload.get("phone")) or _str(customer.get("phone")) or _str(billing.get("phone")),
            "ip_address": _str(payload.get("browser_ip")),
            "user_agent": (_str(client.get("user_agent")) or "")[:512] or None,
        }
    )
    return _clean(
        {
            "external_order_id": _str(payload.get("id")),
            "currency": _str(payload.get("currency")),
            "billing_address": _shopify_address(payload.get("billing_address")),
            "shipping_address": _shopify_address(payload.get("shipping_address")),
            "lines": lines,
            "coupon": next((c for c in codes if c), None),
            "notes": _str(payload.get("note")),
            "payment_method": _str(gateways[0]) if gateways else None,
            "order_discount": order_discount,
            "shipping_total": shipping if shipping_lines else None,
            "shipping_tax": shipping_tax or None,
            "taxes_included": bool(payload.get("taxes_included")),
            "total_tax": _amount(payload.get("total_tax")),
            "total": _amount(payload.get("total_price")),
            "test": payload.get("test") is True,
            "placed_at": _str(payload.get("created_at")),
            "metadata": _clean({"shopify_name": _str(payload.get("name"))}),
        }
    ) | {"buyer": buyer, "lines": lines}  # always there, so a missing one is a field error


def skip_reason(payload: Any) -> tuple[str, str] | None:
    """Why a Shopify `orders/create` delivery is not a live order, if it is not: Shopify's own test
    notification is a cancelled, voided order; any order already cancelled is not to be fulfilled."""
    if isinstance(payload, dict) and payload.get("cancelled_at"):
        return (
            "CANCELLED",
            f"the order was cancelled ({_str(payload.get('cancel_reason')) or 'no reason given'})",
        )
    return None


# Shopify's REST Admin API DraftOrder resource has fields an Order never has (`invoice_url`,
# `invoice_sent_at`, `reserve_inventory_until`, `order_id` - the order it became -, `completed_at`,
# and `status` open / invoice_sent / completed; an Order has `financial_status` and
# `fulfillment_status`, no `status`). Shopify signs the body, not the `X-Shopify-Topic` header, so
# a draft order's body delivered with its topic changed to orders/create is recognised by its body.
DRAFT_ORDER_FIELDS = ("invoice_url", "invoice_sent_at", "reserve_inventory_until", "order_id", "completed_at")
DRAFT_ORDER_STATUSES = ("open", "invoice_sent", "completed")


def is_draft_order(payload: Any) -> bool:
    """True for a Shopify DraftOrder body (whatever topic header came with it): not an order."""
    if not isinstance(payload, dict):
        return False
    if any(key in payload for key in DRAFT_ORDER_FIELDS):
        return True
    status = payload.get("status")
    return isinstance(status, str) and status.strip().lower() in DRAFT_ORDER_STATUSES


# --- generic canonical event (Standard Webhooks convention) -------------------------------------

CANONICAL_EVENT_TYPE = "order.created"


def is_order_event(payload: Any) -> bool:
    """False for a well-formed event of another type (answered 200 ignored, not refused)."""
    return not (
        isinstance(payload, dict)
        and isinstance(payload.get("type"), str)
        and payload["type"] != CANONICAL_EVENT_TYPE
    )


def from_canonical_event(payload: Any) -> dict[str, Any]:
    """`{"type": "order.created", "timestamp": ..., "data": <CanonicalOrder>}`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise IntakeRejectedError(400, "MALFORMED_BODY", 'expected {"type": "order.created", "data": {...}}')
    if payload.get("type") != CANONICAL_EVENT_TYPE:
        raise IntakeRejectedError(
            422,
            "UNSUPPORTED_EVENT_TYPE",
            f"event type must be {CANONICAL_EVENT_TYPE!r}",
            [{"field": "type", "code": "unsupported", "message": f"got {payload.get('type')!r}"}],
        )
    return payload["data"]


# --- storefront form ----------------------------------------------------------------------------

FORM_ADDRESS_FIELDS = ("company", "address1", "address2", "city", "province", "zip", "country")
# Address fields a form sends at its top level (they are the buyer's as well as the address's).
FORM_TOP_LEVEL_ADDRESS_FIELDS = ("first_name", "last_name", "phone")


def _form_lines(fields: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The posted items that become the order's lines, in line order, each with the sender's own
    key: a JSON list's index, or the `k` of a urlencoded `items[k][...]` (which parses to a dict
    `{"k": {...}}`, ordered by number). Items with neither a sku nor a name are no line."""
    items = fields.get("items")
    if isinstance(items, dict):
        keyed = [(str(k), items[k]) for k in sorted(items, key=lambda k: int(k) if str(k).isdigit() else 0)]
    elif isinstance(items, list):
        keyed = [(str(i), item) for i, item in enumerate(items)]
    else:  # absent or a plain value: no lines, which the order model reports at `items`
        keyed = []
    return [(k, i) for k, i in keyed if isinstance(i, Mapping) and (i.get("sku") or i.get("name"))]


@dataclass(frozen=True)
class FormFieldNames:
    """One form post's names for the canonical order's fields, so an error names the field the
    way its sender did and the form can show it next to that field.

    Called with a canonical path (`shipping_address.province`, `buyer.email`, `lines.1.sku`,
    as in pydantic's error locations and `RequestRejectedError.field`), it answers the post's
    name: urlencoded `address[province]`, `email`, `items[7][sku]`; JSON `address.province`,
    `email`, `items.7.sku`. A line is named by the sender's own index (`line_keys`), never by its
    position among the lines. A path the form has no field for is answered as it is.
    """

    urlencoded: bool
    line_keys: tuple[str, ...] = ()

    @classmethod
    def of(cls, fields: Mapping[str, Any], *, urlencoded: bool) -> FormFieldNames:
        return cls(urlencoded=urlencoded, line_keys=tuple(k for k, _ in _form_lines(fields)))

    def __call__(self, path: str) -> str:
        head, *rest = path.split(".")
        if head == "buyer" and rest:
            head, *rest = rest
        elif head in ("billing_address", "shipping_address"):
            if rest and rest[0] in FORM_TOP_LEVEL_ADDRESS_FIELDS:
                head, *rest = rest
            else:
                head = "address"
        elif head == "lines":
            head = "items"
            if rest and rest[0].isdigit() and int(rest[0]) < len(self.line_keys):
                rest[0] = self.line_keys[int(rest[0])]
        else:
            return path
        if self.urlencoded:
            return head + "".join(f"[{part}]" for part in rest)
        return ".".join([head, *rest])


def from_form(fields: Mapping[str, Any], *, ip: str | None, user_agent: str | None) -> dict[str, Any]:
    """A storefront order form (flat buyer fields, `address[...]`, `items[n][sku|quantity]`).

    `lines.<i>` of the result is the i-th of `_form_lines`: `FormFieldNames.of(fields, ...)` names
    it back by the sender's key."""
    address = fields.get("address") if isinstance(fields.get("address"), dict) else {}
    items = fields.get("items")
    lines: Any = [
        _clean({"sku": i.get("sku"), "quantity": i.get("quantity"), "name": i.get("name")})
        for _, i in _form_lines(fields)
    ]
    if items not in (None, "") and not isinstance(items, (list, dict)):
        lines = items  # `"items": 3` is not a list of items: the order model says so, at `items`
    addr: Any = None
    if fields.get("address") not in (None, "") and not isinstance(fields.get("address"), dict):
        # `"address": "Domplatz 1"` is no address object: never dropped (the order would go out
        # without one); the order model refuses it at `address`, as `items` above
        addr = fields.get("address")
    elif address and any(address.get(k) for k in FORM_ADDRESS_FIELDS):
        addr = _clean(
            {k: fields.get(k) for k in FORM_TOP_LEVEL_ADDRESS_FIELDS}
            | {k: address.get(k) for k in FORM_ADDRESS_FIELDS}
        )
    buyer = _clean(
        {
            "email": fields.get("email"),
            "first_name": fields.get("first_name"),
            "last_name": fields.get("last_name"),
            "phone": fields.get("phone"),
            "ip_address": ip,
            "user_agent": (user_agent or "")[:512] or None,
        }
    )
    order = _clean(
        {
            "currency": fields.get("currency"),
            "billing_address": addr,
            "shipping_address": addr,
            "coupon": fields.get("coupon"),
            "notes": fields.get("notes"),
        }
    )
    # buyer and lines always present, so a missing one is reported as a field error
    return order | {"buyer": buyer, "lines": lines}


MAX_FORM_DEPTH = 4  # items[0][sku] nests 3 levels; nothing a form sends goes deeper
MAX_FORM_NAME = 200  # characters in one field name


def parse_urlencoded(body: str) -> dict[str, Any]:
    """`a=1&address[city]=X&items[0][sku]=S` -> nested dicts (PHP/Rails bracket convention).

    Field names nest at most `MAX_FORM_DEPTH` levels and are at most `MAX_FORM_NAME` characters:
    anything else is a ValueError (400 `MALFORMED_BODY`), never a structure deep enough to exhaust
    the recursion of whatever reads it next (validation, masking, logging). So is a name sent twice
    (`items[0][sku]` twice: which one the buyer meant is unknown) and a name that is both a value
    and a group (`items=3` with `items[0][sku]`); the message names the field.
    """
    from urllib.parse import parse_qsl

    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, max_num_fields=500):
        if len(key) > MAX_FORM_NAME:
            raise ValueError(f"a field name is longer than {MAX_FORM_NAME} characters")
        parts = key.replace("]", "").split("[")
        if len(parts) > MAX_FORM_DEPTH:
            raise ValueError(f"a field name nests deeper than {MAX_FORM_DEPTH} levels")
        node = out
        for depth, part in enumerate(parts[:-1], start=1):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                name = _bracketed(parts[:depth])
                raise AmbiguousFormFieldError(name, f"{name!r} is sent both as a value and as a group")
            node = nxt
        if isinstance(node.get(parts[-1]), dict):
            name = _bracketed(parts)
            raise AmbiguousFormFieldError(name, f"{name!r} is sent both as a value and as a group")
        if parts[-1] in node:
            raise AmbiguousFormFieldError(key, f"{key!r} is sent more than once")
        node[parts[-1]] = value
    return out


def duplicate_json_key(text: str) -> str | None:
    """The first key a JSON form body sends twice in one object (`{"email": .., "email": ..}`),
    else None. `json.loads` keeps the last silently; a form post is refused instead (400
    `MALFORMED_BODY`), as a urlencoded name sent twice is. `text` must be valid JSON."""
    import json

    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out and not found:
                found.append(key)
            out[key] = value
        return out

    json.loads(text, object_pairs_hook=pairs)
    return found[0] if found else None


def _bracketed(parts: list[str]) -> str:
    """A parsed field name as a form writes it: `["items", "0", "sku"]` -> `items[0][sku]`."""
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])
