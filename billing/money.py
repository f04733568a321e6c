"""Money: Decimal amounts, one rounding rule, and Stripe's minor units, each in one place.

Every amount the platform stores or shows went through ``money()`` exactly once, at the charge
(quantity × rate, the voucher's share of a charge). Lines, invoices and exports only add those
rounded amounts, so they can never drift apart by a cent.
"""

from __future__ import annotations

from decimal import Decimal

from instrumentshare.core.money import CENT, HUNDRED, ZERO, money

__all__ = ["CENT", "HUNDRED", "ZERO", "format_money", "from_minor_units", "money", "share_of", "to_minor_units",
           "total"]

# ISO 4217 currencies Stripe counts without a minor unit (https://stripe.com/docs/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
})


def share_of(amount: Decimal, percent: Decimal) -> Decimal:
    """``percent`` % of ``amount``, rounded once."""
    return money(Decimal(amount) * Decimal(percent) / HUNDRED)


def total(amounts) -> Decimal:
    """The sum of already rounded amounts (no further rounding: the parts are exact to the cent)."""
    result = ZERO
    for amount in amounts:
        result += amount
    return result


def _exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Decimal yuan to the integer fen Stripe counts in (or whole units for zero-decimal currencies)."""
    scaled = money(amount) * (10 ** _exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} has more precision than the currency allows")
    return int(scaled)


def from_minor_units(units: int, currency: str) -> Decimal:
    return money(Decimal(int(units)) / (10 ** _exponent(currency)))


def format_money(amount: Decimal | None, currency: str = "CNY") -> str:
    if amount is None:
        return ""
    return f"{currency} {money(amount):,.2f}"
