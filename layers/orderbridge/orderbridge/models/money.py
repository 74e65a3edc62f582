"""Money: `Decimal` amounts in a currency's own minor units (ISO 4217), never float.

ISO 4217 says how many decimals each currency has (JPY 0, USD 2, KWD 3, CLF 4); the `iso4217`
package carries the published table, so no hand-kept copy of it can drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from itertools import pairwise


class UnknownCurrencyError(ValueError):
    """Not an active ISO 4217 currency code."""


@cache
def minor_units(currency: str) -> int:
    """Decimals of `currency` (ISO 4217 exponent): JPY 0, USD 2, KWD 3. Raises UnknownCurrencyError;
    currencies without minor units in the table (XAU, XXX) count as 0."""
    from iso4217 import Currency  # its table loads on first use, not at every function's cold start

    try:
        exponent = Currency(currency.upper()).exponent
    except (ValueError, KeyError):
        raise UnknownCurrencyError(f"{currency!r} is not an ISO 4217 currency code") from None
    return int(exponent or 0)


def quantum(currency: str) -> Decimal:
    """The smallest amount of `currency`: Decimal('0.01') for USD, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-minor_units(currency))


def decimals(amount: Decimal) -> int:
    """How many decimals `amount` really has (trailing zeros do not count: 12.50 has 1)."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fits(amount: Decimal, currency: str) -> bool:
    """True when `amount` is a whole number of `currency`'s minor units."""
    return decimals(amount) <= minor_units(currency)


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` as an integer count of minor units (12.50 USD -> 1250, 500 JPY -> 500).

    Raises ValueError when the amount has more decimals than the currency allows."""
    if not fits(amount, currency):
        raise ValueError(f"{amount} has more decimals than {currency} allows ({minor_units(currency)})")
    return int(amount.scaleb(minor_units(currency)))


def from_minor(units: int, currency: str) -> Decimal:
    """The amount of `units` minor units of `currency`, at the currency's scale."""
    return Decimal(units).scaleb(-minor_units(currency)).quantize(quantum(currency))


def split_units(amounts: Sequence[Decimal], quantity: int, currency: str) -> list[tuple[int, list[Decimal]]]:
    """`amounts` of one line (all units together, e.g. its price without and with tax) as per-unit
    prices in whole minor units of `currency` that, times their units, add up to each exactly.

    Returns `[(units, [price each of amounts[0], amounts[1], ...]), ...]`: one group when every amount
    divides evenly, else up to len(amounts) + 1 groups whose prices differ by at most one minor unit,
    the dearer units first (10.00 over 3 units -> `[(1, [3.34]), (2, [3.33])]`; 18.00 and 21.42 over
    2 -> `[(2, [9.00, 10.71])]`). For amounts a <= b, each unit's price of a is <= its price of b.
    Raises ValueError for a quantity below 1 or an amount with more decimals than `currency` allows."""
    if quantity < 1:
        raise ValueError(f"quantity {quantity} is below 1")
    parts = [divmod(to_minor(amount, currency), quantity) for amount in amounts]
    # The first `rest` units of each amount take one minor unit more: cut where any rest ends.
    cuts = sorted({0, quantity, *(rest for _, rest in parts)})
    groups: list[tuple[int, list[Decimal]]] = []
    for start, end in pairwise(cuts):
        each = [from_minor(base + (1 if start < rest else 0), currency) for base, rest in parts]
        groups.append((end - start, each))
    return groups


def split(amount: Decimal, quantity: int, currency: str) -> list[tuple[int, Decimal]]:
    """`amount` (all units) as `[(units, price each)]` in whole minor units adding up to it exactly:
    `split_units` for one amount (10.00 over 3 -> `[(1, 3.34), (2, 3.33)]`)."""
    return [(units, each[0]) for units, each in split_units([amount], quantity, currency)]
