"""Usage's part of a person's data export (accounts.extensions.personal_data_sections)."""

from instrumentshare.accounts.privacy import rows

from .models import BillableItem, ServiceRecord, UsageSession


def personal_data(user) -> dict:
    return {
        "usage_sessions": rows(UsageSession.objects.filter(user=user), "id", "instrument_id", "start", "end",
                               "source", "samples"),
        "billable_items": rows(BillableItem.objects.filter(user=user), "id", "instrument_id", "kind", "unit",
                               "quantity", "service_start", "service_end", "state"),
        "service_records": rows(ServiceRecord.objects.filter(user=user), "id", "instrument_id", "start", "end",
                                "hours", "fee", "rating"),
    }
