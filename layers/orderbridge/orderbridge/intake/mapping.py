"""Turning what storefronts send into the canonical order.

Each mapper returns a plain dict shaped like `CanonicalOrder`; validation happens once, in the
service, so every way in reports field errors the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orderbridge.exceptions import IntakeRejectedError


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


# --- Shopify orders/create --------------------------------------------------------------------


def _shopify_address(a: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not a:
        return None
    return _clean(
        {
            "first_name": a.get("first_name"),
            "last_name": a.get("last_name"),
            "company": a.get("company"),
            "address1": a.get("address1"),
            "address2": a.get("address2"),
            "city": a.get("city"),
            "province": a.get("province_code") or a.get("province"),
            "zip": a.get("zip"),
            "country": a.get("country_code"),
            "phone": a.get("phone"),
        }
    )


def from_shopify(payload: Any) -> dict[str, Any]:
    """A Shopify `orders/create` webhook payload (REST Admin API order object)."""
    if not isinstance(payload, dict):
        raise IntakeRejectedError(400, "MALFORMED_BODY", "a Shopify order payload is a JSON object")
    customer = payload.get("customer") or {}
    lines = []
    for item in payload.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        lines.append(
            _clean(
                {
                    "sku": item.get("sku") or None,
                    "name": item.get("title") or item.get("name"),
                    "quantity": item.get("quantity"),
                    "unit_price": item.get("price"),
                    "options": {
                        str(p.get("name")): str(p.get("value"))
                        for p in item.get("properties") or []
                        if isinstance(p, dict) and p.get("name")
                    },
                }
            )
        )
    shipping_total = sum(
        float(s.get("price") or 0) for s in payload.get("shipping_lines") or [] if isinstance(s, dict)
    )
    codes = [d.get("code") for d in payload.get("discount_codes") or [] if isinstance(d, dict)]
    gateways = payload.get("payment_gateway_names") or []
    client = payload.get("client_details") or {}
    return _clean(
        {
            "external_order_id": str(payload["id"]) if payload.get("id") is not None else None,
            "currency": payload.get("currency"),
            "buyer": _clean(
                {
                    "email": payload.get("email") or payload.get("contact_email") or customer.get("email"),
                    "first_name": customer.get("first_name"),
                    "last_name": customer.get("last_name"),
                    "phone": payload.get("phone") or customer.get("phone"),
                    "ip_address": payload.get("browser_ip"),
                    "user_agent": client.get("user_agent") if isinstance(client, dict) else None,
                }
            ),
            "billing_address": _shopify_address(payload.get("billing_address")),
            "shipping_address": _shopify_address(payload.get("shipping_address")),
            "lines": lines,
            "coupon": codes[0] if codes else None,
            "notes": payload.get("note"),
            "payment_method": gateways[0] if gateways else None,
            "shipping_total": f"{shipping_total:.2f}" if shipping_total else None,
            "total": payload.get("total_price"),
            "placed_at": payload.get("created_at"),
            "metadata": _clean({"shopify_name": payload.get("name")}),
        }
    )


# --- generic canonical event (Standard Webhooks convention) -------------------------------------

CANONICAL_EVENT_TYPE = "order.created"


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


def from_form(fields: Mapping[str, Any], *, ip: str | None, user_agent: str | None) -> dict[str, Any]:
    """A storefront order form (flat buyer fields, `address[...]`, `items[n][sku|quantity]`)."""
    address = fields.get("address") if isinstance(fields.get("address"), dict) else {}
    items = fields.get("items")
    if isinstance(items, dict):  # urlencoded items[0][sku] parses to {"0": {...}}
        items = [items[k] for k in sorted(items, key=lambda k: int(k) if str(k).isdigit() else 0)]
    lines = [
        _clean({"sku": i.get("sku"), "quantity": i.get("quantity"), "name": i.get("name")})
        for i in items or []
        if isinstance(i, dict) and (i.get("sku") or i.get("name"))
    ]
    addr = None
    if address and any(address.get(k) for k in FORM_ADDRESS_FIELDS):
        addr = _clean(
            {
                "first_name": fields.get("first_name"),
                "last_name": fields.get("last_name"),
                "phone": fields.get("phone"),
            }
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


def parse_urlencoded(body: str) -> dict[str, Any]:
    """`a=1&address[city]=X&items[0][sku]=S` -> nested dicts (PHP/Rails bracket convention)."""
    from urllib.parse import parse_qsl

    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, max_num_fields=500):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out
