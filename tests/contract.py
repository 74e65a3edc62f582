"""BigCommerce's own OpenAPI file as a validator for what our adapter sends."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "bigcommerce" / "orders.v2.oas2.yml"
CONTRACT_SHA256 = "f85ba9dd682ddc0f4547bda456fe1cf416da0e67ac3e8597238d5a1c71912d43"


@cache
def _validator() -> OAS30Validator:
    spec = yaml.safe_load(CONTRACT.read_text())
    root = {"$ref": "#/components/schemas/order_Post", "components": spec["components"]}
    return OAS30Validator(root)


def bigcommerce_order_post_errors(body: Any) -> list[str]:
    """Every way `body` breaks the contract's `order_Post` schema (empty when it conforms)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(body)]
