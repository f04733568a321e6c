"""What the platform holds about one person, for them to download (their right of access)."""

from __future__ import annotations

from django.utils import timezone

from instrumentshare.audit.services import to_json_value

from . import queries


def personal_data(user) -> dict:
    from bookings.models import Booking, CreditEvent, FeedToken, ServiceRecord, UsageSession
    from instrumentshare.audit.models import AuditEvent

    def rows(queryset, *fields):
        return [to_json_value(row) for row in queryset.values(*fields)]

    return {
        "generated_at": timezone.now().isoformat(),
        "profile": to_json_value({
            "id": user.pk, "username": user.username, "full_name": user.full_name, "email": user.email,
            "phone": user.phone, "organization_id": user.organization_id, "date_joined": user.date_joined,
            "last_login": user.last_login, "preferred_language": user.preferred_language,
            "roles": queries.roles_of(user),
        }),
        "memberships": rows(user.memberships.all(), "lab_id", "lab__name_zh", "role", "created_at"),
        "api_tokens": rows(user.api_tokens.all(), "id", "name", "prefix", "scope", "created_at", "last_used_at",
                           "revoked_at"),
        "feed_links": rows(FeedToken.objects.filter(user=user), "id", "scope", "lab_id", "created_at", "revoked_at"),
        "bookings": rows(Booking.objects.filter(user=user), "id", "instrument_id", "instrument__name_zh", "start",
                         "end", "state", "purpose", "is_internal", "created_at", "late_cancellation", "reason"),
        "usage_sessions": rows(UsageSession.objects.filter(user=user), "id", "instrument_id", "start", "end",
                               "source", "samples"),
        "service_records": rows(ServiceRecord.objects.filter(user=user), "id", "instrument_id", "start", "end",
                                "hours", "fee", "rating"),
        "credit_events": rows(CreditEvent.objects.filter(user=user), "kind", "delta", "booking_id", "created_at"),
        "audit_events_by_me": rows(AuditEvent.objects.filter(actor=user).order_by("id"), "occurred_at", "action",
                                   "target_type", "target_id", "reason"),
    }
