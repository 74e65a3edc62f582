"""The form's input limits, read from the canonical order model so the page cannot drift from it.

The browser checks these (HTML constraint attributes and the script) only to spare the buyer a
round trip; the server validates everything again with the same model.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from orderbridge.models.order import Address, Buyer, CanonicalOrder, OrderLine


def _constraints(model: type[BaseModel], name: str) -> dict[str, Any]:
    """One property's constraints from the model's JSON Schema (optional fields: the non-null branch)."""
    schema = model.model_json_schema()
    prop = dict(schema["properties"][name])
    for branch in prop.pop("anyOf", []):
        if branch.get("type") != "null":
            prop.update(branch)
    out: dict[str, Any] = {"required": name in schema.get("required", [])}
    for keys, attr in (
        (("minLength",), "minlength"),
        (("maxLength",), "maxlength"),
        (("minimum", "ge"), "min"),  # pydantic leaves `ge`/`le` as they are behind a BeforeValidator
        (("maximum", "le"), "max"),
    ):
        for key in keys:
            if key in prop:
                out[attr] = prop[key]
    if "pattern" in prop:
        out["pattern"] = str(prop["pattern"]).removeprefix("^").removesuffix("$")  # HTML anchors it
        # the model checks the pattern before it upper-cases: the script upper-cases as the buyer types
        out["upper"] = any(getattr(m, "to_upper", False) for m in model.model_fields[name].metadata)
    return out


@cache
def field_limits() -> dict[str, dict[str, Any]]:
    """Form field name -> `required`, `minlength`, `maxlength`, `pattern`, `min`, `max`.

    The form always asks for the shipping address, so its fields are required as the `Address`
    model requires them; the buyer's names double as the address's names.
    """
    address = {f"address[{n}]": _constraints(Address, n) for n in ("company", "address1", "address2")}
    address |= {f"address[{n}]": _constraints(Address, n) for n in ("city", "province", "zip", "country")}
    return {
        "email": _constraints(Buyer, "email"),
        "phone": _constraints(Buyer, "phone"),
        "first_name": _constraints(Address, "first_name"),
        "last_name": _constraints(Address, "last_name"),
        **address,
        "quantity": _constraints(OrderLine, "quantity"),
        "coupon": _constraints(CanonicalOrder, "coupon"),
        "notes": _constraints(CanonicalOrder, "notes"),
    }


@cache
def line_limits() -> tuple[int, int]:
    """(fewest, most) lines an order may have."""
    lines = CanonicalOrder.model_json_schema()["properties"]["lines"]
    return int(lines.get("minItems", 1)), int(lines["maxItems"])
