"""Computing a year's statistics from the records, set-based.

For one block of instruments (a range of ids) and one year this runs a fixed handful of GROUP BY
queries, whatever the number of sessions:

- usage sessions per instrument, month, internal/external and user: count and summed duration;
- settled bookings per instrument, month and state (completed, no-show);
- service records per instrument, month, internal/external and user: count, ratings;
- charges per instrument, billing period and payer internal/external: income, voucher share;
- the invoices per instrument and month.
The users served (for distinct counts) come out of the sessions' and service records' groups.

Months are those of the instrument's own time zone (one query per zone present in the block;
a city has one or two). A session counts in the month it started. The definitions:

- effective machine hours = logged use + (warm-up + post-processing allowance) per session;
- external = the matched booking was external, or (unbooked) the user does not belong to the
  owning organization; a session without a user is internal (as reconciliation bills it);
- income = charges (usage, adjustments, waivers) in their billing period, less the charges of
  invoices credited in full; voucher use = the voucher share of those charges; invoices issued
  counts every invoice issued in the month (platform time zone) with a charge for the instrument.

The result is plain rows for ``services.refresh_statistics`` to write.
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, ExtractMonth, ExtractYear, Least, NullIf
from django.utils import timezone

from billing.models import Charge, Invoice
from bookings.models import Booking
from catalog.models import Instrument, ListingChangeRequest
from instrumentshare.accounts.models import Membership
from instrumentshare.core.time import MAX_DURATION
from submissions.models import SampleRequest
from usage.models import ServiceRecord, UsageSession

from .conf import quota_hours

ZERO = Decimal("0.00")
ADDITIVE = (
    "sessions", "use_minutes", "allowance_minutes", "effective_minutes", "external_minutes", "settled_bookings",
    "no_shows", "service_records", "external_service_records", "rating_sum", "rating_count",
    "sample_requests", "samples", "turnaround_minutes",
)
MONEY_FIELDS = ("income", "external_income", "voucher_amount")
DIMENSIONS = ("organization_id", "lab_id", "category_id", "district")


def platform_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def year_bounds(year: int, zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime(year, 1, 1, tzinfo=zone), dt.datetime(year + 1, 1, 1, tzinfo=zone)


def year_fraction(year: int, *, today: dt.date | None = None) -> Decimal:
    """How much of the year's quota is due by today: 1 for past years, pro rata for the current one."""
    today = today or timezone.localdate()
    if year < today.year:
        return Decimal(1)
    if year > today.year:
        return Decimal(0)
    days = 366 if calendar.isleap(year) else 365
    return Decimal(today.timetuple().tm_yday) / days


def months_fraction(year: int, first: int, last: int) -> Decimal:
    days = 366 if calendar.isleap(year) else 365
    in_range = sum(calendar.monthrange(year, month)[1] for month in range(first, last + 1))
    return Decimal(in_range) / days


def _seconds(value) -> int:
    if value is None:
        return 0
    if isinstance(value, dt.timedelta):
        return max(int(value.total_seconds()), 0)
    return max(int(value) // 1_000_000, 0)  # microseconds, as SQLite returns summed durations


def _minutes(seconds: int) -> int:
    return (seconds + 30) // 60


DURATION = ExpressionWrapper(F("end") - F("start"), output_field=DurationField())
# A session counts at most the longest plausible session (``core.time.MAX_DURATION``): a session
# stored with an end in year 9999 must not overflow the yearly minutes.
SESSION_DURATION = Least(DURATION, Value(MAX_DURATION["usage_session"], output_field=DurationField()))

# External use of a session: the booking says so; without a booking, the user's organizations do.
_MEMBER_OF_OWNER = Exists(Membership.objects.filter(
    user_id=OuterRef("user_id"), lab__organization_id=OuterRef("instrument__organization_id")))
SESSION_IS_EXTERNAL = Case(
    When(booking__isnull=False, booking__is_internal=True, then=Value(False)),
    When(booking__isnull=False, then=Value(True)),
    When(user__isnull=True, then=Value(False)),
    When(user__organization_id=F("instrument__organization_id"), then=Value(False)),
    When(_MEMBER_OF_OWNER, then=Value(False)),
    default=Value(True),
    output_field=BooleanField(),
)
PAYER_IS_EXTERNAL = Case(
    When(account__organization_id=F("provider_id"), then=Value(False)),
    default=Value(True),
    output_field=BooleanField(),
)


# --- the block of instruments ----------------------------------------------------------------


@dataclass
class InstrumentFacts:
    id: int
    organization_id: int
    lab_id: int
    category_id: str
    district: str
    purpose: str
    time_zone: str
    allowance: int  # minutes per session
    original_value: Decimal
    is_mandatory: bool
    is_open: bool
    is_published: bool
    first_day: dt.date

    @property
    def dimensions(self) -> dict:
        return {"instrument_id": self.id, "organization_id": self.organization_id, "lab_id": self.lab_id,
                "category_id": self.category_id, "district": self.district}


def instrument_facts(first_id: int, last_id: int) -> list[InstrumentFacts]:
    """The instruments with ids in [first_id, last_id], with what the statistics group them by."""
    exempt = set(ListingChangeRequest.objects.filter(
        state=ListingChangeRequest.State.APPROVED, instrument_id__gte=first_id, instrument_id__lte=last_id,
    ).values_list("instrument_id", flat=True))
    rows = Instrument.objects.filter(pk__gte=first_id, pk__lte=last_id).annotate(
        where=Coalesce(NullIf("district", Value("")), NullIf("lab__district", Value("")),
                       NullIf("organization__district", Value("")), Value("")),
    ).values("id", "organization_id", "lab_id", "category_id", "where", "purpose", "time_zone", "warmup_minutes",
             "postprocessing_minutes", "original_value", "funded_central", "funded_local", "listing_state",
             "share_mode", "created_at", "purchase_date", "acceptance_date").order_by("id")
    facts = []
    for row in rows:
        created = timezone.localtime(row["created_at"], platform_zone()).date()
        dates = [day for day in (row["purchase_date"], row["acceptance_date"]) if day] + [created]
        published = row["listing_state"] == Instrument.ListingState.PUBLISHED
        mandatory = (row["funded_central"] or row["funded_local"]) and \
            row["original_value"] >= settings.MANDATORY_LISTING_VALUE and row["id"] not in exempt
        facts.append(InstrumentFacts(
            id=row["id"], organization_id=row["organization_id"], lab_id=row["lab_id"],
            category_id=row["category_id"], district=row["where"], purpose=row["purpose"],
            time_zone=row["time_zone"], allowance=row["warmup_minutes"] + row["postprocessing_minutes"],
            original_value=row["original_value"], is_mandatory=mandatory,
            is_open=published and row["share_mode"] == Instrument.ShareMode.EXTERNAL,
            is_published=published, first_day=min(dates)))
    return facts


@dataclass
class Block:
    """What one block of instruments contributes to one year: rows ready to be written."""

    year: int
    months: dict[tuple[int, int], dict] = field(default_factory=dict)  # (instrument, month) -> measures
    users: dict[tuple[int, int, int], dict] = field(default_factory=dict)  # (instrument, month, user) -> facts
    invoices: set[tuple[int, int, int]] = field(default_factory=set)  # (instrument, month, invoice)

    def measures(self, instrument_id: int, month: int) -> dict:
        key = (instrument_id, month)
        if key not in self.months:
            self.months[key] = {**dict.fromkeys(ADDITIVE, 0), **dict.fromkeys(MONEY_FIELDS, ZERO),
                                "use_seconds": 0, "external_seconds": 0, "external_allowance": 0}
        return self.months[key]


def _zone_filters(facts: list[InstrumentFacts]) -> list[tuple[zoneinfo.ZoneInfo, dict]]:
    """One filter per time zone of the block: the id range, narrowed to the zone's ids when mixed."""
    first, last = facts[0].id, facts[-1].id
    zones: dict[str, list[int]] = defaultdict(list)
    for fact in facts:
        zones[fact.time_zone].append(fact.id)
    result = []
    for name, ids in zones.items():
        filters = {"instrument_id__gte": first, "instrument_id__lte": last}
        if len(zones) > 1:
            filters["instrument_id__in"] = ids
        result.append((zoneinfo.ZoneInfo(name), filters))
    return result


def compute_block(year: int, facts: list[InstrumentFacts]) -> Block:
    block = Block(year=year)
    if not facts:
        return block
    by_id = {fact.id: fact for fact in facts}
    for zone, filters in _zone_filters(facts):
        start, end = year_bounds(year, zone)
        _add_sessions(block, by_id, zone, filters, start, end)
        _add_bookings(block, zone, filters, start, end)
        _add_service_records(block, zone, filters, start, end)
        _add_sample_requests(block, zone, filters, start, end)
    _add_charges(block, facts[0].id, facts[-1].id)
    _add_invoices(block, facts[0].id, facts[-1].id)
    return block


def _add_sessions(block: Block, by_id: dict, zone, filters: dict, start, end) -> None:
    """One GROUP BY over the block's sessions of the year, per instrument, month, internal/external and
    user: the measures are summed from it here, and it names the users served at the same time."""
    sessions = UsageSession.objects.filter(**filters, start__gte=start, start__lt=end, end__isnull=False) \
        .annotate(external=SESSION_IS_EXTERNAL, month=ExtractMonth("start", tzinfo=zone)).order_by()
    groups = sessions.values("instrument_id", "month", "external", "user_id", "user__organization_id",
                             "user__organization__district").annotate(count=Count("id"), used=Sum(SESSION_DURATION))
    for row in groups.iterator(chunk_size=5000):
        measures = block.measures(row["instrument_id"], row["month"])
        seconds = _seconds(row["used"])
        allowance = row["count"] * by_id[row["instrument_id"]].allowance
        measures["sessions"] += row["count"]
        measures["use_seconds"] += seconds
        measures["allowance_minutes"] += allowance
        if row["external"]:
            measures["external_seconds"] += seconds
            measures["external_allowance"] += allowance
        if row["user_id"] is not None:
            _add_user(block, row["instrument_id"], row["month"], row["user_id"], row["external"],
                      row["user__organization_id"], row["user__organization__district"])


def _add_user(block: Block, instrument_id, month, user_id, external, organization_id, district) -> None:
    key = (instrument_id, month, user_id)
    known = block.users.get(key)
    if known is None:
        block.users[key] = {"is_external": bool(external), "user_organization_id": organization_id,
                            "user_district": district or ""}
    elif external:
        known["is_external"] = True


def _add_bookings(block: Block, zone, filters: dict, start, end) -> None:
    settled = Booking.objects.filter(**filters, start__gte=start, start__lt=end,
                                     state__in=(Booking.State.COMPLETED, Booking.State.NO_SHOW)) \
        .annotate(month=ExtractMonth("start", tzinfo=zone)).order_by()
    for row in settled.values("instrument_id", "month", "state").annotate(count=Count("id")):
        measures = block.measures(row["instrument_id"], row["month"])
        measures["settled_bookings"] += row["count"]
        if row["state"] == Booking.State.NO_SHOW:
            measures["no_shows"] += row["count"]


def _add_service_records(block: Block, zone, filters: dict, start, end) -> None:
    records = ServiceRecord.objects.filter(**filters, start__gte=start, start__lt=end) \
        .annotate(month=ExtractMonth("start", tzinfo=zone)).order_by()
    groups = records.values("instrument_id", "month", "is_internal", "user_id", "applicant_organization_id",
                            "applicant_organization__district").annotate(
        count=Count("id"), rating_sum=Sum("rating"), rating_count=Count("rating"))
    for row in groups.iterator(chunk_size=5000):
        measures = block.measures(row["instrument_id"], row["month"])
        measures["service_records"] += row["count"]
        if not row["is_internal"]:
            measures["external_service_records"] += row["count"]
        measures["rating_sum"] += row["rating_sum"] or 0
        measures["rating_count"] += row["rating_count"]
        if row["user_id"] is not None:
            _add_user(block, row["instrument_id"], row["month"], row["user_id"], not row["is_internal"],
                      row["applicant_organization_id"], row["applicant_organization__district"])


def _add_sample_requests(block: Block, zone, filters: dict, start, end) -> None:
    """Completed sample requests by the month of completion: how many, their samples, their turnaround."""
    done = SampleRequest.objects.filter(**filters, state=SampleRequest.State.COMPLETED, completed_at__gte=start,
                                        completed_at__lt=end) \
        .annotate(month=ExtractMonth("completed_at", tzinfo=zone)).order_by()
    for row in done.values("instrument_id", "month", "received_at", "delivered_at", "received_count",
                           "sample_count").iterator(chunk_size=5000):
        measures = block.measures(row["instrument_id"], row["month"])
        measures["sample_requests"] += 1
        count = row["received_count"]
        measures["samples"] += count if count is not None else row["sample_count"]
        if row["received_at"] and row["delivered_at"]:
            measures["turnaround_minutes"] += _minutes(_seconds(row["delivered_at"] - row["received_at"]))


def _add_charges(block: Block, first: int, last: int) -> None:
    charges = Charge.objects.filter(instrument_id__gte=first, instrument_id__lte=last,
                                    period__startswith=f"{block.year:04d}-") \
        .exclude(invoice__state=Invoice.State.CREDITED).annotate(external=PAYER_IS_EXTERNAL).order_by()
    for row in charges.values("instrument_id", "period", "external").annotate(
            amount=Sum("amount"), voucher=Sum("voucher_amount")):
        measures = block.measures(row["instrument_id"], int(row["period"][5:7]))
        amount = row["amount"] or ZERO
        measures["income"] += amount
        measures["voucher_amount"] += row["voucher"] or ZERO
        if row["external"]:
            measures["external_income"] += amount


def _add_invoices(block: Block, first: int, last: int) -> None:
    zone = platform_zone()
    start, end = year_bounds(block.year, zone)
    rows = Charge.objects.filter(instrument_id__gte=first, instrument_id__lte=last,
                                 invoice__kind=Invoice.Kind.INVOICE, invoice__issued_at__gte=start,
                                 invoice__issued_at__lt=end) \
        .annotate(month=ExtractMonth("invoice__issued_at", tzinfo=zone)).order_by() \
        .values_list("instrument_id", "month", "invoice_id").distinct()
    block.invoices.update(rows)


# --- finishing the rows ----------------------------------------------------------------------


def finish_month(measures: dict) -> dict:
    """Minutes from the summed seconds, effective and external minutes with the allowance."""
    use = _minutes(measures.pop("use_seconds"))
    external = _minutes(measures.pop("external_seconds"))
    external_allowance = measures.pop("external_allowance")
    measures["use_minutes"] = use
    measures["effective_minutes"] = use + measures["allowance_minutes"]
    measures["external_minutes"] = external + external_allowance
    return measures


def year_totals(months: list[dict]) -> dict:
    totals = {**dict.fromkeys(ADDITIVE, 0), **dict.fromkeys(MONEY_FIELDS, ZERO)}
    for measures in months:
        for name in (*ADDITIVE, *MONEY_FIELDS):
            totals[name] += measures[name]
    return totals


def existed_in(fact: InstrumentFacts, year: int) -> bool:
    return fact.first_day <= dt.date(year, 12, 31)


def year_row_fields(fact: InstrumentFacts) -> dict:
    return {"purpose": fact.purpose, "quota_hours": quota_hours(fact.purpose), "original_value": fact.original_value,
            "is_mandatory": fact.is_mandatory, "is_open": fact.is_open, "is_published": fact.is_published}


def years_with_records() -> list[int]:
    """Every year some usage was logged in (platform time zone), for a full rebuild."""
    zone = platform_zone()
    years = UsageSession.objects.filter(start__isnull=False).annotate(year=ExtractYear("start", tzinfo=zone)) \
        .order_by().values_list("year", flat=True).distinct()
    return sorted(set(years))
