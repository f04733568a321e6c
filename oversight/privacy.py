"""Oversight's part of a person's data export (accounts.extensions.personal_data_sections)."""

from instrumentshare.accounts.privacy import rows

from .models import InstrumentMonthUser, PurchaseCheck


def personal_data(user) -> dict:
    return {
        "purchase_checks": rows(PurchaseCheck.objects.filter(user=user).order_by("id"), "lab_id", "category_id",
                                "value", "year", "instrument_count", "average_hours", "saturated", "created_at"),
        "usage_statistics": rows(InstrumentMonthUser.objects.filter(user=user).order_by("year", "month"),
                                 "year", "month", "instrument_id", "is_external"),
    }
