"""Navigation by role. Apps add their pages here; entries whose URL does not exist yet are skipped."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from instrumentshare.accounts import queries


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str
    role: str | tuple[str, ...]  # any of "anyone", "user", "lab_manager", "finance_officer", "platform_admin"


ENTRIES = [
    NavEntry(_("Instruments"), "catalog:search", "anyone"),
    NavEntry(_("My bookings"), "bookings:mine", "user"),
    NavEntry(_("My sample requests"), "submissions:mine", "user"),
    NavEntry(_("My instruments"), "catalog:my_labs", "lab_manager"),
    NavEntry(_("My lab"), "bookings:lab_queue", "lab_manager"),
    NavEntry(_("Sample work queue"), "submissions:lab_queue", "lab_manager"),
    NavEntry(_("Usage review"), "usage:review", "lab_manager"),
    NavEntry(_("Finance"), "billing:finance", "finance_officer"),
    NavEntry(_("My bills"), "billing:mine", "user"),
    NavEntry(_("Compliance"), "catalog:compliance", ("platform_admin", "lab_manager", "finance_officer")),
    NavEntry(_("Oversight"), "oversight:dashboard", ("platform_admin", "finance_officer", "lab_manager")),
    NavEntry(_("API"), "api:openapi-view", "anyone"),
]


def entries_for(user) -> list[dict]:
    roles = {"anyone"}
    if queries.is_authenticated(user):
        roles |= {"user", *queries.roles_of(user)}
    result = []
    for entry in ENTRIES:
        wanted = {entry.role} if isinstance(entry.role, str) else set(entry.role)
        if not wanted & roles:
            continue
        try:
            url = reverse(entry.url_name)
        except NoReverseMatch:
            continue
        result.append({"label": entry.label, "url": url, "url_name": entry.url_name})
    return result
