from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(value) -> str:
    """1234.5 → 1,234.50 (amounts are already rounded; this only formats)."""
    if value in (None, ""):
        return ""
    return f"{Decimal(value):,.2f}"


@register.filter
def plain(value) -> str:
    """40.00 → 40, 1.5000 → 1.5, 10 → 10 (never 1E+1)."""
    if value in (None, ""):
        return ""
    return format(Decimal(value).normalize(), "f")
