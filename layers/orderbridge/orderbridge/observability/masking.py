"""One helper that erases buyer PII from anything order-shaped before it is logged.

Logs keep ids (tracking id, source, order id) and codes only. When a structure has to be
logged to explain a failure (a rejected payload at DEBUG, a provider's refusal), it goes
through `mask_pii` first: Powertools' data masking erases the fields below wherever they
occur, at any depth, in canonical, form, Shopify or provider shapes. `erase` needs no KMS.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from typing import Any

# Field names that carry a person's data, in every shape orderbridge sees.
PII_FIELDS: tuple[str, ...] = (
    "email",
    "contact_email",
    "phone",
    "first_name",
    "last_name",
    "name",
    "company",
    "address1",
    "address2",
    "street",
    "zip",
    "postcode",
    "ip",
    "ip_address",
    "browser_ip",
    "client_ip",
    "source_ip",
    "user_agent",
)
MASK = "*****"  # what Powertools' erase writes in place of a value


@cache
def _masker() -> Any:
    from aws_lambda_powertools.utilities.data_masking import DataMasking  # only when something is masked

    return DataMasking(raise_on_missing_field=False)


@cache
def _paths() -> list[str]:
    return [f"$..{name}" for name in PII_FIELDS]


def mask_pii(data: Any) -> Any:
    """A copy of `data` (dict, list, or JSON text) with every PII field erased; others pass as they are."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            return MASK  # unparseable text might be anything: log none of it
    if not isinstance(data, (dict, list)):
        return data
    copy = {"_": json.loads(json.dumps(data, default=str))}  # a dict root, whatever `data` is
    with warnings.catch_warnings():  # Powertools warns for each field this structure does not have
        warnings.simplefilter("ignore", UserWarning)
        try:
            return _masker().erase(copy, fields=_paths())["_"]
        except Exception:  # never let masking fail open: log nothing of the structure instead
            return MASK
