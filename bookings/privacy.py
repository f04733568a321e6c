"""Bookings' part of a person's data export (accounts.extensions.personal_data_sections)."""

from instrumentshare.accounts.privacy import rows

from .models import Booking, BookingSeries, CreditEvent, FeedToken, UserCredit, WaitlistEntry


def personal_data(user) -> dict:
    return {
        "bookings": rows(Booking.objects.filter(user=user), "id", "instrument_id", "instrument__name_zh", "start",
                         "end", "state", "purpose", "is_internal", "created_at", "late_cancellation", "reason"),
        "booking_series": rows(BookingSeries.objects.filter(user=user), "id", "instrument_id", "instrument__name_zh",
                               "first_start", "duration_minutes", "time_zone", "rrule", "purpose", "skipped",
                               "created_at"),
        "feed_links": rows(FeedToken.objects.filter(user=user), "id", "scope", "lab_id", "created_at", "revoked_at"),
        "credit": rows(UserCredit.objects.filter(user=user), "score", "updated_at"),
        "credit_events": rows(CreditEvent.objects.filter(user=user), "kind", "delta", "booking_id", "created_at"),
        "waiting_list": rows(WaitlistEntry.objects.filter(user=user), "id", "instrument_id", "instrument__name_zh",
                             "start", "end", "minutes", "purpose", "state", "created_at", "offer_start", "offer_end",
                             "offer_expires_at", "booking_id"),
    }
