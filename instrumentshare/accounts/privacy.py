"""What the platform holds about one person, for them to download (their right of access).

Accounts writes the profile and what it holds itself; every app above adds its sections through
``accounts.extensions.personal_data_sections`` (bookings, usage, billing, the catalog's
qualifications...). What a person did as staff (granted, decided, created) is in
``audit_events_by_me``.
"""

from __future__ import annotations

from django.utils import timezone

from instrumentshare.audit.models import AuditEvent
from instrumentshare.audit.services import to_json_value

from . import queries
from .extensions import personal_data_sections


def rows(queryset, *fields) -> list[dict]:
    return [to_json_value(row) for row in queryset.values(*fields)]


def personal_data(user) -> dict:
    data = {
        "generated_at": timezone.now().isoformat(),
        "profile": to_json_value({
            "id": user.pk, "username": user.username, "full_name": user.full_name, "email": user.email,
            "phone": user.phone, "organization_id": user.organization_id, "date_joined": user.date_joined,
            "last_login": user.last_login, "preferred_language": user.preferred_language,
            "roles": queries.roles_of(user),
        }),
        "memberships": rows(user.memberships.all(), "lab_id", "lab__name_zh", "role", "created_at"),
        "organization_roles": rows(user.organization_roles.all(), "organization_id", "organization__name_zh",
                                   "role"),
        "api_tokens": rows(user.api_tokens.all(), "id", "name", "prefix", "scope", "created_at", "last_used_at",
                           "revoked_at"),
    }
    for sections in personal_data_sections.collect(user):
        data.update(sections)
    data["audit_events_by_me"] = rows(AuditEvent.objects.filter(actor=user).order_by("id"), "occurred_at", "action",
                                      "target_type", "target_id", "reason")
    return data
