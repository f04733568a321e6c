"""Reads about instruments, shared by pages, the API, bookings and reports."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from instrumentshare.accounts import queries as people

from .models import Category, Instrument, Qualification

BOOKABLE_STATUSES = (
    Instrument.Status.NORMAL,
    Instrument.Status.OCCASIONAL_FAULTS,
    Instrument.Status.FREQUENT_FAULTS,
)


def instruments() -> QuerySet[Instrument]:
    return Instrument.objects.select_related("lab", "organization", "category", "policy")


def visible_instruments(user) -> QuerySet[Instrument]:
    """Published instruments for everyone; drafts only for their lab's people and the bureau."""
    queryset = instruments()
    if people.is_platform_admin(user):
        return queryset
    lab_ids = people.member_lab_ids(user) | people.managed_lab_ids(user)
    return queryset.filter(Q(listing_state=Instrument.ListingState.PUBLISHED) | Q(lab_id__in=lab_ids))


def managed_instruments(user) -> QuerySet[Instrument]:
    return instruments().filter(lab_id__in=people.managed_lab_ids(user))


def can_manage(user, instrument: Instrument) -> bool:
    return people.is_lab_manager(user, instrument.lab_id)


def can_see(user, instrument: Instrument) -> bool:
    return instrument.is_published or can_manage(user, instrument) or people.is_platform_admin(user) or (
        instrument.lab_id in people.member_lab_ids(user)
    )


def is_internal_user(user, instrument: Instrument) -> bool:
    return people.is_internal(user, instrument.organization_id)


def may_book(user, instrument: Instrument) -> tuple[bool, str]:
    """Whether the listing and share mode let this user book at all (rules come later)."""
    if not people.is_authenticated(user):
        return False, "not_authenticated"
    in_lab = instrument.lab_id in people.member_lab_ids(user)
    if not instrument.is_published and not in_lab:
        return False, "not_published"
    if instrument.status not in BOOKABLE_STATUSES:
        return False, "out_of_service"
    if instrument.share_mode == Instrument.ShareMode.EXTERNAL:
        return True, ""
    if instrument.share_mode == Instrument.ShareMode.INTERNAL:
        return (True, "") if is_internal_user(user, instrument) else (False, "internal_only")
    return (True, "") if in_lab else (False, "not_shared")


def is_qualified(user, instrument: Instrument, at=None) -> bool:
    for qualification in Qualification.objects.filter(instrument=instrument, user=user, revoked_at__isnull=True):
        if qualification.is_valid(at):
            return True
    return False


def category_filter(code: str) -> Q:
    """Instruments in a category at any level: 010000 covers every 01xxxx code."""
    level = 1 if code.endswith("0000") else (2 if code.endswith("00") else 3)
    return Q(category_id__startswith=code[: 2 * level])


def categories_tree() -> QuerySet[Category]:
    return Category.objects.order_by("code")
