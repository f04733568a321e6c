"""Reads about people and their roles, shared by pages, the API and other apps."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from .models import Lab, Membership, Organization, OrganizationRole, User


def is_authenticated(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def is_platform_admin(user) -> bool:
    return is_authenticated(user) and user.oversees_platform


def managed_lab_ids(user) -> set[int]:
    if not is_authenticated(user):
        return set()
    cache = getattr(user, "_managed_lab_ids", None)
    if cache is None:
        _load_memberships(user)
        cache = user._managed_lab_ids
    return cache


def member_lab_ids(user) -> set[int]:
    if not is_authenticated(user):
        return set()
    cache = getattr(user, "_member_lab_ids", None)
    if cache is None:
        _load_memberships(user)
        cache = user._member_lab_ids
    return cache


def _load_memberships(user) -> None:
    """One statement for the labs a user is in, their role there and the labs' organizations."""
    remember_memberships(user, Membership.objects.filter(user=user).values_list("lab_id", "lab__organization_id",
                                                                                  "role"))


def remember_memberships(user, rows) -> None:
    """Keep (lab id, organization id, role) rows on the user for this request's role checks."""
    rows = list(rows)
    user._member_lab_ids = {lab_id for lab_id, _organization_id, _role in rows}
    user._managed_lab_ids = {lab_id for lab_id, _organization_id, role in rows if role == Membership.Role.MANAGER}
    organization_ids = {organization_id for _lab_id, organization_id, _role in rows}
    if user.organization_id:
        organization_ids.add(user.organization_id)
    user._organization_ids = organization_ids


def memberships_sql() -> str:
    """A scalar subquery of one parameter, the user's id: their memberships as text
    ``lab:organization:role`` joined by commas (NULL for none), for a hot statement that reads them
    beside other rows; ``parse_memberships`` reads it."""
    aggregate = "string_agg" if connection.vendor == "postgresql" else "group_concat"
    return (f"(SELECT {aggregate}(m.lab_id || ':' || l.organization_id || ':' || m.role, ',') "  # noqa: S608 - names from the models; values are parameters
            "FROM accounts_membership m JOIN accounts_lab l ON l.id = m.lab_id "
            "WHERE m.user_id = %s)")


def parse_memberships(text: str | None) -> list[tuple[int, int, str]]:
    rows = []
    for item in (text or "").split(","):
        if item:
            lab_id, organization_id, role = item.split(":", 2)
            rows.append((int(lab_id), int(organization_id), role))
    return rows


def finance_organization_ids(user) -> set[int]:
    if not is_authenticated(user):
        return set()
    cache = getattr(user, "_finance_org_ids", None)
    if cache is None:
        cache = set(
            OrganizationRole.objects.filter(user=user, role=OrganizationRole.Role.FINANCE).values_list(
                "organization_id", flat=True
            )
        )
        user._finance_org_ids = cache
    return cache


def is_lab_manager(user, lab: Lab | int) -> bool:
    lab_id = lab if isinstance(lab, int) else lab.pk
    return lab_id in managed_lab_ids(user)


def is_finance_officer(user, organization: Organization | int) -> bool:
    organization_id = organization if isinstance(organization, int) else organization.pk
    return organization_id in finance_organization_ids(user)


def organization_ids_of(user) -> set[int]:
    """Every organization the user belongs to: their own, and those of the labs they are in."""
    if not is_authenticated(user):
        return set()
    cache = getattr(user, "_organization_ids", None)
    if cache is None:
        _load_memberships(user)
        cache = user._organization_ids
    return cache


def is_internal(user, organization: Organization | int) -> bool:
    """Internal use means the user belongs to the organization that owns the instrument."""
    organization_id = organization if isinstance(organization, int) else organization.pk
    return organization_id in organization_ids_of(user)


def roles_of(user) -> list[str]:
    """Role codes for navigation and the /me endpoint."""
    if not is_authenticated(user):
        return []
    roles = ["researcher"]
    if managed_lab_ids(user):
        roles.append("lab_manager")
    if finance_organization_ids(user):
        roles.append("finance_officer")
    if is_platform_admin(user):
        roles.append("platform_admin")
    if user.organization_id and user.organization.kind == Organization.Kind.COMPANY:
        roles.append("company_user")
    return roles


def memberships_of(user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("lab", "lab__organization").order_by("lab__name_zh")


def active_tokens_of(user) -> QuerySet:
    return user.api_tokens.filter(revoked_at__isnull=True).order_by("-created_at")


def users_with_labs() -> QuerySet[User]:
    return User.objects.select_related("organization").prefetch_related("memberships__lab")
