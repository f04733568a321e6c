"""The one rounding rule for money, below every app that computes an amount (billing's charges, a
sample request's quote): to 0.01, halves away from zero, as Chinese invoices do.
``billing.money`` builds its shares, totals and Stripe units on it."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)


def money(value) -> Decimal:
    """The one rounding rule: to 0.01, halves away from zero (ROUND_HALF_UP), as Chinese invoices do."""
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
