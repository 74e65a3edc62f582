"""The canonical order: the one shape every way in produces and every provider adapter reads.

Limits here are the tightest common denominators of the providers' own limits, so an order that
validates here can be expressed by any adapter; provider-specific limits live in the adapters.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# The pattern admits lower case because pydantic checks it before `to_upper` applies.
CountryCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern="^[a-zA-Z]{2}$")]
CurrencyCode = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern="^[a-zA-Z]{3}$")
]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1000000"), decimal_places=2)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetaValue = Annotated[str, StringConstraints(max_length=500)]

# --- email addresses ------------------------------------------------------------------------------
# Our own syntax check instead of pydantic's EmailStr: `email_validator` (with dnspython and idna)
# cost 30-50 ms of every cold start for one field, and we never check deliverability anyway.
# Same rules as EmailStr with email_validator's defaults: dot-atom local part (UTF-8 allowed, no
# quoting), a dotted domain of LDH labels (IDNA for non-ASCII) whose TLD ends with a letter, no
# special-use names, no IP literals, 254 characters at most; `Name <a@b.c>` gives `a@b.c`. Errors
# are pydantic's `value_error` with EmailStr's message, so error codes and field paths stay.
MAX_EMAIL_INPUT = 2048
_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~\u0080-\U0010FFFF"
_LOCAL = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PRETTY = re.compile(
    r'\s*(?:(?:[\w!#$%&\'*+\-/=?^_`{|}~]+\s+)*[\w!#$%&\'*+\-/=?^_`{|}~]+|"(?:[^"]|\")+")?\s*<(.+)>\s*'
)
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _email_error(reason: str) -> PydanticCustomError:
    return PydanticCustomError(
        "value_error", "value is not a valid email address: {reason}", {"reason": reason}
    )


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain.lower()
    try:
        return unicodedata.normalize("NFC", domain).encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _email_error(
            "The part after the @-sign is not a valid internationalized domain name."
        ) from None


def _label_ok(label: str) -> bool:
    # IDNA leaves "--" in the third and fourth places to A-labels ("xn--").
    return bool(_LABEL.fullmatch(label)) and (label[2:4] != "--" or label.startswith("xn--"))


def normalize_email(value: str) -> str:
    """The address, checked for syntax and normalized (domain lowercased, Unicode NFC)."""
    if len(value) > MAX_EMAIL_INPUT:
        raise _email_error(f"Length must not exceed {MAX_EMAIL_INPUT} characters")
    pretty = _PRETTY.fullmatch(value)
    email = (pretty.group(1) if pretty else value).strip()
    local, at, domain = email.rpartition("@")
    if not at or not local:
        raise _email_error("An email address must have an @-sign and something before it.")
    local = unicodedata.normalize("NFC", local)
    if not _LOCAL.fullmatch(local) or any(
        c.isspace() or unicodedata.category(c)[0] in "CZ" for c in local if not c.isascii()
    ):
        raise _email_error("The part before the @-sign is not valid.")
    if not domain or domain.startswith("[") or domain.endswith("."):
        raise _email_error("The part after the @-sign is not valid.")
    ascii_domain = _ascii_domain(domain)
    labels = ascii_domain.split(".")
    if len(labels) < 2:
        raise _email_error("The part after the @-sign is not valid. It should have a period.")
    if len(ascii_domain) > 253 or not all(_label_ok(label) for label in labels):
        raise _email_error("The part after the @-sign is not valid.")
    if not labels[-1][-1].isalpha():
        raise _email_error(
            "The part after the @-sign is not valid. It is not within a valid top-level domain."
        )
    if labels[-1] in _SPECIAL_USE or ascii_domain in _SPECIAL_USE:
        raise _email_error("The part after the @-sign is a special-use or reserved name.")
    try:
        shown = ascii_domain.encode("ascii").decode("idna") if "xn--" in ascii_domain else ascii_domain
    except UnicodeError:
        raise _email_error(
            "The part after the @-sign is not a valid internationalized domain name."
        ) from None
    normalized = f"{local}@{shown}"
    if len(normalized.encode("utf-8")) > 254:
        raise _email_error("The email address is too long.")
    return normalized


Email = Annotated[str, AfterValidator(normalize_email), WithJsonSchema({"type": "string", "format": "email"})]

MAX_LINES = 100
MAX_QUANTITY = 10000
MAX_METADATA_KEYS = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Strict):
    """A postal address; the fields every provider needs when it takes one."""

    first_name: ShortText
    last_name: ShortText
    company: Text | None = None
    address1: Text
    address2: Text | None = None
    city: ShortText
    province: ShortText | None = None
    zip: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=20)]
    country: CountryCode
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


class Buyer(_Strict):
    """Who is buying. PII: masked in logs, not stored in the outcome table."""

    email: Email
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    ip_address: Annotated[str, StringConstraints(max_length=39)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None


class OrderLine(_Strict):
    """One line: a SKU the route's catalog maps to provider ids, or a custom product by name."""

    sku: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = None
    name: Text | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
    unit_price: Money | None = None
    options: dict[ShortText, Annotated[str, StringConstraints(max_length=255)]] = Field(
        default_factory=dict, max_length=20
    )

    @model_validator(mode="after")
    def _sku_or_name(self) -> OrderLine:
        if self.sku is None and self.name is None:
            raise ValueError("a line needs a sku or a name")
        return self


class CanonicalOrder(_Strict):
    """An order as orderbridge understands it, independent of any storefront or provider."""

    external_order_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] | None
    ) = Field(default=None, description="The order's id in the system it came from.")
    currency: CurrencyCode = "USD"
    buyer: Buyer
    billing_address: Address | None = None
    shipping_address: Address | None = None
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)
    coupon: ShortText | None = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    payment_method: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)] | None
    ) = None
    shipping_total: Money | None = None
    total: Money | None = Field(default=None, description="Order total, when the source knows it.")
    placed_at: datetime | None = None
    metadata: dict[MetaKey, MetaValue] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)

    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)
