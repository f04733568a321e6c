"""Reads about instruments, shared by pages, the API, bookings and reports."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Prefetch, Q, QuerySet, Window
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab, Organization
from instrumentshare.core import rows
from instrumentshare.core.bulk import pg_array
from instrumentshare.core.errors import Forbidden, NotFound

from . import search_text
from .extensions import free_instruments
from .models import (
    BookingPolicy,
    Category,
    Downtime,
    Instrument,
    ListingChangeRequest,
    OpeningException,
    Qualification,
    TrainingRequest,
)

BOOKABLE_STATUSES = (
    Instrument.Status.NORMAL,
    Instrument.Status.OCCASIONAL_FAULTS,
    Instrument.Status.FREQUENT_FAULTS,
)


def instruments() -> QuerySet[Instrument]:
    return Instrument.objects.select_related("lab", "organization", "category", "policy")


def instrument_with_policy(instrument_id: int) -> Instrument | None:
    """The instrument and its booking policy, as ``select_related("policy")`` reads them, by one statement
    written once (``instrumentshare.core.rows``): every availability and calendar request starts here, and
    composing that query through the ORM cost more CPU than answering it."""
    row = rows.one(_instrument_with_policy_sql(), [instrument_id])
    if row is None:
        return None
    instrument, policy = rows.instances(row, Instrument, BookingPolicy)
    Instrument._meta.get_field("policy").set_cached_value(instrument, policy)
    return instrument


@functools.cache
def _instrument_with_policy_sql() -> str:
    return (f"SELECT {rows.columns(Instrument, 'i')}, {rows.columns(BookingPolicy, 'p')} "  # noqa: S608 - names from the models
            "FROM catalog_instrument i LEFT JOIN catalog_bookingpolicy p ON p.instrument_id = i.id WHERE i.id = %s")


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
    # category__code is the foreign key's own column (the code is the primary key): no join.
    return Q(category__code__startswith=code[: 2 * level])


def categories_tree() -> QuerySet[Category]:
    return Category.objects.order_by("code")


def category_path(code: str) -> list[Category]:
    """The category and its ancestors, top level first (for breadcrumbs and the search selects)."""
    path = []
    category = Category.objects.filter(pk=code).select_related("parent__parent").first()
    while category is not None:
        path.insert(0, category)
        category = category.parent
    return path


def child_categories(parent_code: str | None) -> QuerySet[Category]:
    if not parent_code:
        return Category.objects.filter(parent__isnull=True).order_by("code")
    return Category.objects.filter(parent_id=parent_code).order_by("code")


def leaf_categories() -> QuerySet[Category]:
    """Categories an instrument may carry: the finest codes, those without sub-categories."""
    return Category.objects.filter(children__isnull=True).select_related("parent").order_by("code")


# --- finding instruments -------------------------------------------------------------------

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
SEARCH_FIELDS = (
    "name_zh", "name_en", "model_number", "manufacturer", "main_functions", "category__name_zh", "category__name_en",
)
SORTS = {
    "name": (F("name_zh").asc(), F("id").asc()),
    "value": (F("original_value").desc(), F("id").asc()),
    # Drafts have no publication time: after the published ones on every database.
    "newest": (F("published_at").desc(nulls_last=True), F("created_at").desc(), F("id").desc()),
}

# A later filter narrows the queryset further, e.g. bookings' "free between A and B for at least
# N hours": ``lambda queryset: queryset.filter(pk__in=...)``. It runs after every catalog filter,
# on the already narrowed set, and before sorting and paging.
FreeFilter = Callable[[QuerySet[Instrument]], QuerySet[Instrument]]


def search_instruments(
    user,
    *,
    text: str = "",
    category: str = "",
    organization: int | None = None,
    district: str = "",
    share_mode: str = "",
    sort: str = "name",
    free_filter: FreeFilter | None = None,
) -> QuerySet[Instrument]:
    """The instruments this user may see that match every given criterion, sorted.

    Price range waits for billing's rate cards: the fee today is free text, so there is nothing
    to compare a price against and the parameter is not accepted until there is.
    """
    queryset = _text_filter(visible_instruments(user), text)
    if category:
        queryset = queryset.filter(category_filter(category))
    if organization:
        queryset = queryset.filter(organization_id=organization)
    if district:
        queryset = queryset.filter(district=district)
    if share_mode:
        queryset = queryset.filter(share_mode=share_mode)
    if free_filter is not None:
        queryset = free_filter(queryset)
    return queryset.order_by(*SORTS.get(sort, SORTS["name"]))


def _text_filter(queryset: QuerySet[Instrument], text: str) -> QuerySet[Instrument]:
    """Every word matches some field, through its synonyms (``catalog.search_text``); if that finds
    nothing among the visible instruments, long Chinese words may match by most of their bigrams."""
    query_words = search_text.words(text)
    exact = queryset
    for word in query_words:
        exact = exact.filter(search_text.word_match(word, SEARCH_FIELDS))
    fuzzable = [word for word in query_words if search_text.fuzzable(word)]
    if not fuzzable or exact.exists():
        return exact
    fuzzy = queryset
    for index, word in enumerate(query_words):
        if not search_text.fuzzable(word):
            fuzzy = fuzzy.filter(search_text.word_match(word, SEARCH_FIELDS))
            continue
        score, bar = search_text.fuzzy_score(word, SEARCH_FIELDS)
        name = f"fuzz_{index}"
        either = search_text.word_match(word, SEARCH_FIELDS) | Q(**{f"{name}__gte": bar})
        fuzzy = fuzzy.alias(**{name: score}).filter(either)
    return fuzzy


@dataclass
class Page:
    items: list
    number: int
    size: int
    count: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def paginate(queryset: QuerySet, *, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE,
             count_in_page: bool = False) -> Page:
    """One page of ``queryset`` and how many rows it has in all.

    By default a count, then the page, which stops after its rows in an index's order (``catalog.Instrument``
    has one for each of the search's sorts). ``count_in_page``: one statement, the count a window over every
    matching row (``COUNT(*) OVER ()``, computed before the page is cut; only a page past the end, with no
    row to carry it, asks again): the filters run once, but every match is joined and sorted before the cut.
    On a city of 10,000 (in-process medians) the window lost where many rows match (all published
    instruments by value 13 → 73 ms; a text matching 4,645 27 → 61 ms) and won where few do (a text matching
    83: 57 → 32 ms). The search asks for it with a free-time filter, whose matches are at most the instruments
    the free-time statement found, given as a list of ids."""
    size = max(1, min(page_size, MAX_PAGE_SIZE))
    number = max(1, page)
    start = (number - 1) * size
    if count_in_page:
        items = list(queryset.annotate(page_total=Window(Count("pk")))[start:start + size])
        count = items[0].page_total if items else queryset.count() if start else 0
        return Page(items=items, number=number, size=size, count=count)
    count = queryset.count()
    items = list(queryset[start:start + size]) if start < count else []  # past the end: nothing to fetch
    return Page(items=items, number=number, size=size, count=count)


def search_districts(user) -> list[str]:
    values = visible_instruments(user).exclude(district="").values_list("district", flat=True)
    return sorted(set(values.order_by().distinct()))


def search_organizations(user) -> QuerySet[Organization]:
    ids = visible_instruments(user).order_by().values("organization_id").distinct()
    return Organization.objects.filter(pk__in=ids).order_by("name_zh")


# --- one instrument ------------------------------------------------------------------------


def instrument_for(user, instrument_id: int) -> Instrument | None:
    """The instrument if this user may see it, else None (the caller answers 404)."""
    instrument = instruments().filter(pk=instrument_id).first()
    if instrument is None or not can_see(user, instrument):
        return None
    return instrument


def instrument_to_manage(user, instrument_id: int) -> Instrument:
    """For reads only a manager may make (qualifications, requests): 404 if unseen, 403 if not theirs."""
    instrument = instrument_for(user, instrument_id)
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    if not can_manage(user, instrument):
        raise Forbidden("forbidden", "Only a manager of the owning lab may do this.")
    return instrument


def upcoming_downtime(instrument: Instrument, *, now: datetime | None = None) -> QuerySet[Downtime]:
    return instrument.downtimes.filter(end__gt=now or timezone.now()).order_by("start")


def upcoming_exceptions(instrument: Instrument, *, now: datetime | None = None) -> QuerySet[OpeningException]:
    today = timezone.localtime(now or timezone.now(), instrument.zone).date()
    return instrument.opening_exceptions.filter(date__gte=today).order_by("date")


def qualifications_of(instrument: Instrument) -> QuerySet[Qualification]:
    return instrument.qualifications.select_related("user", "granted_by").order_by("-granted_at")


def open_training_requests(instrument: Instrument) -> QuerySet[TrainingRequest]:
    return instrument.training_requests.filter(state=TrainingRequest.State.OPEN).select_related("user")


def training_queue(user) -> QuerySet[TrainingRequest]:
    """Open training requests for every instrument of the labs this user manages, oldest first."""
    return (TrainingRequest.objects.filter(state=TrainingRequest.State.OPEN,
                                           instrument__lab_id__in=people.managed_lab_ids(user))
            .select_related("user", "instrument", "instrument__lab").order_by("created_at", "id"))


def open_training_request_of(user, instrument: Instrument) -> TrainingRequest | None:
    if not people.is_authenticated(user):
        return None
    return instrument.training_requests.filter(user=user, state=TrainingRequest.State.OPEN).first()


def managed_labs(user) -> QuerySet[Lab]:
    return Lab.objects.filter(pk__in=people.managed_lab_ids(user)).select_related("organization").order_by("code")


def lab_instruments(lab: Lab) -> QuerySet[Instrument]:
    return instruments().filter(lab=lab).order_by("asset_number")


# --- listing exemptions, compliance scope --------------------------------------------------


def listing_requests_for(user, *, state: str | None = None) -> QuerySet[ListingChangeRequest]:
    """The bureau sees every request; a lab manager those of their labs' instruments; others none."""
    queryset = ListingChangeRequest.objects.select_related(
        "instrument", "instrument__lab", "instrument__organization", "requested_by", "decided_by"
    ).order_by("-requested_at")
    if state:
        queryset = queryset.filter(state=state)
    if people.is_platform_admin(user):
        return queryset
    return queryset.filter(instrument__lab_id__in=people.managed_lab_ids(user))


def approved_exemptions() -> QuerySet[ListingChangeRequest]:
    return ListingChangeRequest.objects.filter(state=ListingChangeRequest.State.APPROVED)


def compliance_organization_ids(user) -> set[int] | None:
    """Whose compliance rows the user may read: None means every organization (the bureau).

    Lab managers read their labs' organizations, finance officers their own organization.
    """
    if people.is_platform_admin(user):
        return None
    ids = set(people.finance_organization_ids(user))
    ids |= set(Lab.objects.filter(pk__in=people.managed_lab_ids(user)).values_list("organization_id", flat=True))
    return ids


def may_read_compliance(user) -> bool:
    scope = compliance_organization_ids(user)
    return scope is None or bool(scope)


def mandatory_instruments(*, threshold, organization_ids: set[int] | None = None) -> QuerySet[Instrument]:
    queryset = Instrument.objects.filter(Q(funded_central=True) | Q(funded_local=True), original_value__gte=threshold)
    if organization_ids is not None:
        queryset = queryset.filter(organization_id__in=organization_ids)
    return queryset.select_related("organization", "lab", "category").prefetch_related(
        Prefetch("listing_requests", queryset=approved_exemptions(), to_attr="approved_exemptions")
    ).order_by("organization__name_zh", "lab__code", "asset_number")


# "Free between A and B for at least N hours" needs bookings, which depends on catalog, not the
# other way round: bookings contributes it (catalog.extensions.free_instruments).
MAX_FREE_WINDOW_DAYS = 31


def free_time_filter(start, end, hours):
    """A search narrowing step: instruments with ``hours`` of contiguous free time in [start, end)."""
    import datetime as dt

    from instrumentshare.core.errors import Invalid

    if start is None or end is None or not hours:
        return None
    if start.utcoffset() is None or end.utcoffset() is None:
        raise Invalid("naive_datetime", gettext("The free-time window needs a time zone offset."))
    if start >= end or end - start > dt.timedelta(days=MAX_FREE_WINDOW_DAYS):
        raise Invalid("invalid_range", gettext(
            "The free-time window must end after it starts and span at most %(days)s days.",
        ) % {"days": MAX_FREE_WINDOW_DAYS})
    if not free_instruments:
        return None
    minutes = int(float(hours) * 60)
    return lambda queryset: queryset.filter(pk__in=one_of(free_instruments.call(queryset, start, end, minutes)))


def one_of(ids) -> list[int] | RawSQL:
    """``ids`` for a ``pk__in`` filter: on PostgreSQL one array literal (``instrumentshare.core.bulk.pg_array``,
    ``IN (SELECT unnest(…))``), not a placeholder per id quoted one by one into the statement (a city's search:
    thousands of ids)."""
    ids = sorted(ids)
    if connection.vendor != "postgresql":
        return ids
    return RawSQL("SELECT unnest(%s::bigint[])", (pg_array(ids),))
