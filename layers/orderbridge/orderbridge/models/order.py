"""The canonical order: the one shape every way in produces and every provider adapter reads.

It carries the money exactly as the buyer was charged (currency; per line unit price, quantity,
discount and tax; order discount, shipping and its tax, tax mode, total), as `Decimal` in the
currency's own minor units. Limits follow the source platforms (Shopify's own field limits), so a
valid order from a shop is never refused here; what one provider cannot take (a billing address,
a zip, an email, a currency) is that provider's adapter's rule.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orderbridge.models import money

# Control characters (NUL, ESC, ...) never belong in an order: refused with a field error. Line
# breaks and tabs are allowed only where text runs over lines (notes).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if pattern.search(value):
            raise PydanticCustomError("control_character", "control characters are not allowed")
        return value

    return AfterValidator(check)


def strip_control(value: str) -> str:
    """`value` without control characters (what a mapper does for a sender that cannot fix it)."""
    return _CONTROL_ONE_LINE.sub("", value)


# Lengths follow Shopify's own limits (255 for names, address lines, titles and codes).
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    _no_control(_CONTROL_ONE_LINE),
]
ShortText = Text
# Codes outside ISO 3166-1's assigned list that the platforms put on real addresses: Kosovo's XK
# (a user-assigned code; Shopify, BigCommerce and the EU use it). Refusing it would fail a real order.
COUNTRY_CODES_BEYOND_ISO = frozenset({"XK"})


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes assigned to a country (pycountry's table) plus
    `COUNTRY_CODES_BEYOND_ISO`. Loaded on first use, not at import: an intake that never validates
    an address (a status poll) pays nothing; the first address costs ~4 ms once per instance."""
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries) | COUNTRY_CODES_BEYOND_ISO


def _known_country(value: str) -> str:
    if value not in country_codes():
        raise PydanticCustomError(
            "country_invalid", "{code} is not an ISO 3166-1 country code", {"code": value}
        )
    return value


# Two letters (`string_pattern_mismatch` otherwise), then a country that exists (`country_invalid`:
# "ZZ"). The pattern admits lower case because pydantic checks it before `to_upper` applies.
CountryCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern="^[a-zA-Z]{2}$"),
    AfterValidator(_known_country),
]


def _iso_currency(value: str) -> str:
    try:
        money.minor_units(value)
    except money.UnknownCurrencyError:
        raise PydanticCustomError("currency", "not an ISO 4217 currency code") from None
    return value


CurrencyCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern="^[a-zA-Z]{3}$"),
    AfterValidator(_iso_currency),
]
# An amount in the order's currency; its decimals are checked against that currency's minor units.
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), allow_inf_nan=False)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=40), _no_control(_CONTROL_ONE_LINE)]
MetaValue = Annotated[str, StringConstraints(max_length=500), _no_control(_CONTROL)]


def _whole_number(value: object) -> object:
    """Quantities are whole numbers: an int, or a string of digits (form fields are strings).

    Refused: booleans (`true` is not 1), `"1_0"` (Python's int() would read 10), floats,
    and spaces inside."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "a quantity is a whole number, not true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,9}\s*", value):
        return int(value)  # a sign is read, so "-1" is refused as below 1, not as unreadable
    raise PydanticCustomError("int_parsing", "a quantity is a whole number of digits")


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

MAX_LINES = 500  # a Shopify order may hold hundreds of lines; 250 is a real, valid order
MAX_QUANTITY = 100000
MAX_METADATA_KEYS = 20
Quantity = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=MAX_QUANTITY)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=40), _no_control(_CONTROL_ONE_LINE)
]


class Address(_Strict):
    """A postal address. Names and zip are optional, as on the platforms: a Hong Kong address has
    no postcode and a shop's address may carry one name only; a provider that needs them says so."""

    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    address1: Text
    address2: Text | None = None
    city: Text
    province: Text | None = None
    zip: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)] | None = None
    country: CountryCode
    phone: Phone | None = None


class Buyer(_Strict):
    """Who is buying. PII: masked in logs, not stored in the outcome table.

    No email is valid: point-of-sale, draft and phone orders have none (a provider that needs one
    refuses the delivery with EMAIL_REQUIRED)."""

    email: Email | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    phone: Phone | None = None
    ip_address: Annotated[str, StringConstraints(max_length=39)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None


class OrderLine(_Strict):
    """One line: a SKU the route's catalog maps to provider ids, or a custom product by name.

    Money is what the buyer was charged: `unit_price` per unit before discounts (or `line_price`,
    all units, when no unit price the currency can state gives it), `discount` the total taken off
    this line (all units), `tax` the tax on this line (all units)."""

    sku: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), _no_control(_CONTROL)
        ]
        | None
    ) = None
    name: Text | None = Field(default=None, description="The line's full name, variant included.")
    variant_title: Text | None = Field(default=None, description='The variant alone, e.g. "Fine / Bordeaux".')
    quantity: Quantity
    unit_price: Money | None = None
    line_price: Money | None = Field(
        default=None,
        description="The line's price, all units together, before discounts: for a price that does "
        "not divide into a unit price the currency can state (3 for 10.00); equal to unit_price x "
        "quantity when both are given.",
    )
    discount: Money = Field(default=Decimal(0), description="Discount on this line, all units together.")
    tax: Money = Field(default=Decimal(0), description="Tax on this line, all units together.")
    options: dict[Text, Annotated[str, StringConstraints(max_length=1000), _no_control(_CONTROL)]] = Field(
        default_factory=dict,
        max_length=50,
        description="Line properties as the buyer gave them (an engraving text, a gift note).",
    )

    def gross(self) -> Decimal | None:
        """`line_price`, else unit_price x quantity (None when the line has no price)."""
        if self.line_price is not None:
            return self.line_price
        return None if self.unit_price is None else self.unit_price * self.quantity

    def net(self) -> Decimal | None:
        """What the line costs after its discount, before tax."""
        gross = self.gross()
        return None if gross is None else gross - self.discount

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
    coupon: Text | None = Field(default=None, description="The discount code the buyer used.")
    notes: Annotated[str, StringConstraints(max_length=5000), _no_control(_CONTROL)] | None = None
    payment_method: Text | None = None
    order_discount: Money = Field(
        default=Decimal(0), description="Discount on the whole order not already in the lines' `discount`."
    )
    shipping_total: Money | None = Field(default=None, description="Shipping charged, after its discounts.")
    shipping_tax: Money = Field(default=Decimal(0), description="Tax on shipping (part of `total_tax`).")
    taxes_included: bool = Field(default=False, description="Prices include tax (tax is not added on top).")
    total_tax: Money | None = Field(
        default=None, description="All tax of the order; default: the lines' tax plus shipping tax."
    )
    total: Money | None = Field(default=None, description="What the buyer pays, when the source says so.")
    test: bool = Field(default=False, description="The source marked it a test order.")
    placed_at: datetime | None = None
    metadata: dict[MetaKey, MetaValue] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)

    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def priced(self) -> bool:
        """Every line says what it cost, so the order's total can be computed."""
        return all(line.gross() is not None for line in self.lines)

    def subtotal(self) -> Decimal:
        """Lines after their discounts and the order discount, before shipping and tax."""
        return sum((line.net() or Decimal(0) for line in self.lines), Decimal(0)) - self.order_discount

    def tax(self) -> Decimal:
        """All tax: `total_tax`, else the lines' tax plus shipping tax."""
        if self.total_tax is not None:
            return self.total_tax
        return sum((line.tax for line in self.lines), Decimal(0)) + self.shipping_tax

    def computed_total(self) -> Decimal:
        """subtotal + shipping + tax (tax only when prices exclude it), in the currency's units."""
        total = self.subtotal() + (self.shipping_total or Decimal(0))
        if not self.taxes_included:
            total += self.tax()
        return total.quantize(money.quantum(self.currency))

    def amount_due(self) -> Decimal | None:
        """What the buyer pays: the stated total, else the computed one when every line is priced."""
        if self.total is not None:
            return self.total
        return self.computed_total() if self.priced else None

    @model_validator(mode="after")
    def _money_adds_up(self) -> CanonicalOrder:
        """Every amount fits the currency's minor units; discounts do not exceed what they
        discount; a stated total equals the computed one to the minor unit."""
        currency = self.currency
        places = money.minor_units(currency)
        amounts = {
            "order_discount": self.order_discount,
            "shipping_total": self.shipping_total,
            "shipping_tax": self.shipping_tax,
            "total_tax": self.total_tax,
            "total": self.total,
        }
        for i, line in enumerate(self.lines):
            amounts |= {
                f"lines.{i}.unit_price": line.unit_price,
                f"lines.{i}.line_price": line.line_price,
                f"lines.{i}.discount": line.discount,
                f"lines.{i}.tax": line.tax,
            }
        for name, amount in amounts.items():
            if amount is not None and not money.fits(amount, currency):
                raise PydanticCustomError(
                    "money_precision",
                    "{field}: {amount} has more decimals than {currency} allows ({places})",
                    {"field": name, "amount": str(amount), "currency": currency, "places": places},
                )
        for i, line in enumerate(self.lines):
            stated = line.line_price
            if (
                stated is not None
                and line.unit_price is not None
                and line.unit_price * line.quantity != stated
            ):
                raise PydanticCustomError(
                    "line_price_mismatch", "lines.{i}.line_price is not unit_price x quantity", {"i": i}
                )
            gross = line.gross()
            if gross is not None and line.discount > gross:
                raise PydanticCustomError(
                    "discount_too_large", "lines.{i}.discount exceeds the line's price", {"i": i}
                )
        if self.priced and self.subtotal() < 0:
            raise PydanticCustomError("discount_too_large", "the discounts exceed the lines' prices")
        if self.total is not None and self.priced and self.computed_total() != self.total:
            raise PydanticCustomError(
                "total_mismatch",
                "the stated total {total} {currency} is not what the lines, discounts, shipping and "
                "tax add up to ({computed})",
                {"total": str(self.total), "currency": currency, "computed": str(self.computed_total())},
            )
        return self
