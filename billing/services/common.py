"""What every billing service shares: validating a model, a reason, an amount of money."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from instrumentshare.core.errors import Invalid, validated  # noqa: F401 - billing's services import it from here

from ..money import money


def checked_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("reason_required", "Give a reason: it is kept in the audit trail.")
    if len(reason) > 500:
        raise Invalid("reason_too_long", "A reason is at most 500 characters.")
    return reason


def checked_amount(value, *, allow_zero=False, allow_negative=False) -> Decimal:
    try:
        amount = money(value)
    except (InvalidOperation, TypeError, ValueError) as error:
        raise Invalid("invalid_amount", "Not an amount of money.") from error
    if (amount == 0 and not allow_zero) or (amount < 0 and not allow_negative) or abs(amount) >= Decimal("1e11"):
        raise Invalid("invalid_amount", "The amount is out of range.")
    return amount
