"""BigCommerce's own OpenAPI file as a validator for what our adapter sends.

`bigcommerce_order_post_errors` checks a create-order body against the contract's `order_Post`
schema and against the rules its field descriptions state in words (the schema cannot):
order-level money is "Float, Float-As-String, Integer" and "can't be negative"; the
`subtotal_*`, `total_*` and `shipping_cost_*` fields come in ex/inc pairs ("If specified, the
field ... is also required"); product prices are numbers, never negative.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "bigcommerce" / "orders.v2.oas2.yml"
CONTRACT_SHA256 = "f85ba9dd682ddc0f4547bda456fe1cf416da0e67ac3e8597238d5a1c71912d43"

#: `order_Shared` money fields whose descriptions say "(Float, Float-As-String, Integer)" and
#: "The value can't be negative" (`base_wrapping_cost`: "a floating point number ... in string format").
MONEY_FIELDS: tuple[str, ...] = (
    "base_handling_cost",
    "base_shipping_cost",
    "base_wrapping_cost",
    "discount_amount",
    "handling_cost_ex_tax",
    "handling_cost_inc_tax",
    "refunded_amount",
    "shipping_cost_ex_tax",
    "shipping_cost_inc_tax",
    "subtotal_ex_tax",
    "subtotal_inc_tax",
    "total_ex_tax",
    "total_inc_tax",
    "wrapping_cost_ex_tax",
    "wrapping_cost_inc_tax",
)
#: "If specified, the field `...` is also required."
PAIRS: tuple[tuple[str, str], ...] = (
    ("subtotal_ex_tax", "subtotal_inc_tax"),
    ("total_ex_tax", "total_inc_tax"),
    ("shipping_cost_ex_tax", "shipping_cost_inc_tax"),
)
PRODUCT_PRICES: tuple[str, ...] = ("price_ex_tax", "price_inc_tax")
_FLOAT_AS_STRING = re.compile(r"^\d+(\.\d+)?$")


@cache
def _validator() -> OAS30Validator:
    spec = yaml.safe_load(CONTRACT.read_text())
    root = {"$ref": "#/components/schemas/order_Post", "components": spec["components"]}
    return OAS30Validator(root)


def _described_rule_errors(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    errors: list[str] = []
    for key in MONEY_FIELDS:
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            if not _FLOAT_AS_STRING.match(value):
                errors.append(f"{key}: {value!r} is not a non-negative Float-As-String")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            errors.append(f"{key}: {value!r} is not a non-negative number")
    for first, second in PAIRS:
        if (body.get(first) is None) != (body.get(second) is None):
            errors.append(f"{first}/{second}: one of the pair without the other")
    for index, product in enumerate(body.get("products") or []):
        if not isinstance(product, dict):
            continue
        for key in PRODUCT_PRICES:
            value = product.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and Decimal(str(value)) < 0:
                errors.append(f"products/{index}/{key}: {value!r} is negative")
    return errors


def bigcommerce_order_post_errors(body: Any) -> list[str]:
    """Every way `body` breaks the contract's `order_Post` schema or the rules its descriptions
    state (empty when it conforms)."""
    schema = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(body)]
    return schema + _described_rule_errors(body)
