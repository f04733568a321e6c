"""Every write of the oversight app: refreshing the summary tables, national exports, purchase checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from catalog.models import Category, Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab, Organization
from instrumentshare.audit.services import record
from instrumentshare.core.bulk import insert_rows
from instrumentshare.core.errors import Forbidden, Invalid, NotFound

from . import national, queries, stats
from .conf import setting
from .models import (
    InstrumentMonthInvoice,
    InstrumentMonthStat,
    InstrumentMonthUser,
    InstrumentYearStat,
    NationalExport,
    PurchaseCheck,
    StatRefresh,
)

logger = logging.getLogger(__name__)
REFRESH_LOCK_ID = 0x0E5161A7
BLOCK = 5000  # instruments per block: a fixed number of statements and bounded memory per block


# --- statistics ------------------------------------------------------------------------------


@dataclass
class RefreshSummary:
    year: int
    instruments: int = 0
    month_rows: int = 0
    user_rows: int = 0
    invoice_rows: int = 0
    seconds: float = 0.0
    skipped: bool = False


class _RefreshLock:
    """One refresh at a time on PostgreSQL (two beats by mistake): the second skips. SQLite queues writers."""

    def __enter__(self) -> bool:
        self.held = True
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [REFRESH_LOCK_ID])
                self.held = cursor.fetchone()[0]
        return self.held

    def __exit__(self, *exc) -> None:
        if self.held and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [REFRESH_LOCK_ID])


# --- progress of a refresh (in the cache: Redis in production, shared by web and workers) ---------

PROGRESS_KEY = "oversight:refresh-progress:{year}"
PROGRESS_SECONDS = 6 * 3600


def _set_progress(year: int, **state) -> None:
    """What the dashboard shows while a refresh is queued or running. Best effort: a cache that is
    down costs the progress bar, never the refresh."""
    key = PROGRESS_KEY.format(year=year)
    try:
        cache.set(key, {**(cache.get(key) or {}), **state, "year": year}, PROGRESS_SECONDS)
    except Exception as error:  # noqa: BLE001 - any cache backend's failure
        logger.warning("refresh progress of %s not recorded: %s", year, error)


def request_refresh(*, actor, years: list[int] | None = None, reason: str = "on demand",
                    now: dt.datetime | None = None) -> list[int]:
    """Queue a refresh of the figures now (the bureau's button; a month's close). Returns the years queued.

    ``actor`` None is the platform itself (a close that finished); a person must be the bureau."""
    from .tasks import refresh_statistics_task

    if actor is not None and not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only the platform administrator may refresh the statistics.")
    now = now or timezone.now()
    years = sorted(set(years or years_to_refresh(today=timezone.localdate(now))))
    for year in years:
        _set_progress(year, state="queued", requested_at=now.isoformat(), done=0, total=None, reason=reason)
    with transaction.atomic():
        if actor is not None:
            record(actor=actor, action="statistics.refresh_requested", now=now,
                   target=("oversight.statistics", "refresh", "statistics"), after={"years": years})
        for year in years:
            transaction.on_commit(lambda year=year: refresh_statistics_task.delay(year=year))
    return years


def refresh_after_close(period) -> None:
    """``billing.period_closed``: the month's income and invoices count at once, not at the next hourly run."""
    request_refresh(actor=None, years=[int(period.month[:4])], reason=f"period {period.month} closed")


def refresh_statistics(*, year: int, now: dt.datetime | None = None, block_size: int = BLOCK) -> RefreshSummary:
    """Recompute one year's summary rows from the records and replace them, block by block.

    Each block of instruments is read with a fixed handful of GROUP BY queries and written in its
    own short transaction (delete the block's rows of the year, insert the new ones), so readers
    always see whole instruments and a second run leaves exactly what one run leaves.
    """
    started = time.monotonic()
    summary = RefreshSummary(year=year)
    with _RefreshLock() as held:
        if not held:
            summary.skipped = True
            return summary
        last_id = 0
        total = Instrument.objects.count()
        _set_progress(year, state="running", started_at=timezone.now().isoformat(), done=0, total=total)
        while True:
            ids = list(Instrument.objects.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)
                       [:block_size])
            if not ids:
                break
            _refresh_block(year, ids[0], ids[-1], summary)
            last_id = ids[-1]
            _set_progress(year, done=min(total, summary.instruments))
        # Rows of instruments beyond the last one (none unless ids were reused) go too.
        _delete_year_rows(year, last_id + 1, None)
        _analyze_summary_tables()
        summary.seconds = round(time.monotonic() - started, 2)
        StatRefresh.objects.update_or_create(year=year, defaults={
            "refreshed_at": now or timezone.now(), "seconds": Decimal(str(summary.seconds)),
            "instruments": summary.instruments, "month_rows": summary.month_rows})
        _set_progress(year, state="done", done=total, total=total, finished_at=timezone.now().isoformat())
    logger.info("statistics %s refreshed: %s", year, summary)
    warm_dashboard(year)
    return summary


def warm_dashboard(year: int) -> None:
    """Compute the city-wide dashboard of ``year`` (figures in every language, and the compliance
    panel) right after its refresh, so the bureau's first request reads the cache instead of paying
    for the new figures. Best effort: with the cache down the page computes them itself."""
    from django.conf import settings
    from django.utils import translation

    from . import charts

    view = charts.View(scope=queries.Scope(everything=True), year=year)
    refresh = queries.last_refresh(year)
    try:
        for language, _name in settings.LANGUAGES:
            with translation.override(language):
                charts.dashboard_figures(view, refresh)
        queries.non_compliant_page(None, view.scope)
    except Exception as error:  # noqa: BLE001 - any cache backend's failure; the page computes them
        logger.warning("dashboard of %s not prepared after the refresh: %s", year, error)


def _analyze_summary_tables() -> None:
    """A refresh may replace every row: give PostgreSQL's planner fresh statistics at once rather
    than whenever autovacuum comes by (until then the dashboard's GROUP BYs can take seconds)."""
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    tables = ", ".join(quote(model._meta.db_table) for model in
                       (InstrumentMonthStat, InstrumentYearStat, InstrumentMonthUser, InstrumentMonthInvoice))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def _delete_year_rows(year: int, first: int, last: int | None) -> None:
    bounds = {"instrument_id__gte": first} | ({"instrument_id__lte": last} if last is not None else {})
    for model in (InstrumentMonthStat, InstrumentYearStat, InstrumentMonthUser, InstrumentMonthInvoice):
        model.objects.filter(year=year, **bounds).delete()


def _insert(model, rows: list[dict]) -> None:
    """Bulk writing without a model instance per row: a block writes some 10^5 rows, and building
    Django objects for them would cost more than the database does (COPY on PostgreSQL)."""
    if rows:
        names = list(rows[0])
        insert_rows(model, names, (tuple(row[name] for name in names) for row in rows))


def _refresh_block(year: int, first: int, last: int, summary: RefreshSummary) -> None:
    facts = stats.instrument_facts(first, last)
    block = stats.compute_block(year, facts)
    by_id = {fact.id: fact for fact in facts}
    months, per_instrument = [], {}
    for (instrument_id, month), measures in sorted(block.months.items()):
        measures = stats.finish_month(measures)
        per_instrument.setdefault(instrument_id, []).append(measures)
        months.append({**by_id[instrument_id].dimensions, "year": year, "month": month, **measures})
    years = [
        {**fact.dimensions, "year": year, **stats.year_row_fields(fact),
         **stats.year_totals(per_instrument.get(fact.id, []))}
        for fact in facts if fact.id in per_instrument or stats.existed_in(fact, year)
    ]
    users = [{**by_id[instrument_id].dimensions, "year": year, "month": month, "user_id": user_id, **facts_}
             for (instrument_id, month, user_id), facts_ in block.users.items()]
    invoices = [{**by_id[instrument_id].dimensions, "year": year, "month": month, "invoice_id": invoice}
                for instrument_id, month, invoice in block.invoices]
    with transaction.atomic():
        _delete_year_rows(year, first, last)
        _insert(InstrumentMonthStat, months)
        _insert(InstrumentYearStat, years)
        _insert(InstrumentMonthUser, users)
        _insert(InstrumentMonthInvoice, invoices)
    summary.instruments += len(years)
    summary.month_rows += len(months)
    summary.user_rows += len(users)
    summary.invoice_rows += len(invoices)


def years_to_refresh(*, today: dt.date | None = None) -> list[int]:
    """The current year, and the previous one while its late records (January closes) still arrive."""
    today = today or timezone.localdate()
    return [today.year - 1, today.year] if today.month <= 2 else [today.year]


# --- national platform export -----------------------------------------------------------------


def parse_quarter(period: str) -> tuple[int, int]:
    try:
        year_text, quarter_text = period.upper().split("-Q")
        year, quarter = int(year_text), int(quarter_text)
    except ValueError as error:
        raise Invalid("invalid_period", "A quarter is written YYYY-Qn, e.g. 2026-Q1.") from error
    if not (2000 <= year <= 2100 and 1 <= quarter <= 4):
        raise Invalid("invalid_period", "A quarter is written YYYY-Qn, e.g. 2026-Q1.")
    return year, quarter


def previous_quarter(today: dt.date) -> str:
    quarter = (today.month - 1) // 3 + 1
    year, quarter = (today.year, quarter - 1) if quarter > 1 else (today.year - 1, 4)
    return f"{year}-Q{quarter}"


def export_quarter(*, actor, organization_id: int, period: str, now: dt.datetime | None = None,
                   ) -> tuple[NationalExport, bool]:
    """The organization's export for the quarter: built and sent once, then returned as it was.

    Returns ``(export, created)``. The unique key (organization, period) makes a second call, or
    a race of two, return the stored export; an export whose sending failed is sent again.
    """
    if actor is not None and not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only the science bureau exports to the national platform.")
    year, quarter = parse_quarter(period)
    period = f"{year}-Q{quarter}"
    now = now or timezone.now()
    if timezone.localdate(now) <= national.quarter_bounds(year, quarter)[1]:
        raise Invalid("quarter_not_over", "A quarter is exported after it ends.")
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise NotFound("not_found", "No such organization.")
    export = NationalExport.objects.filter(organization=organization, period=period).first()
    created = False
    if export is None:
        payload = national.build_payload(organization=organization, year=year, quarter=quarter, now=now)
        digest = hashlib.sha256(national.canonical_bytes(payload)).hexdigest()
        try:
            with transaction.atomic():
                export = NationalExport.objects.create(
                    organization=organization, period=period, year=year, quarter=quarter, created_at=now,
                    created_by=actor, payload=payload, digest=digest,
                    instrument_count=len(payload["instruments"]),
                    service_record_count=len(payload["service_records"]))
                record(actor=actor, action="oversight.national_export.created", target=export, now=now,
                       after={"period": period, "digest": digest, "instruments": export.instrument_count,
                              "service_records": export.service_record_count})
                created = True
        except IntegrityError:
            export = NationalExport.objects.get(organization=organization, period=period)
    if export.sent_at is None:
        send_export(export_id=export.pk, now=now)
        export.refresh_from_db()
    return export, created


def send_export(*, export_id: int, now: dt.datetime | None = None) -> bool:
    """Hand a stored export to the transport, outside any transaction; safe to repeat."""
    export = NationalExport.objects.filter(pk=export_id).first()
    if export is None or export.sent_at is not None:
        return False
    transport = national.get_transport()
    try:
        destination = transport.send(export=export, content=national.canonical_bytes(export.payload))
    except Exception as error:  # noqa: BLE001 - any transport failure is kept and retried by the task
        logger.warning("national export %s not sent: %s", export.pk, error)
        NationalExport.objects.filter(pk=export.pk).update(attempts=export.attempts + 1,
                                                           last_error=str(error)[:500])
        return False
    # Compare-and-set: a concurrent sender that got there first keeps its time.
    NationalExport.objects.filter(pk=export.pk, sent_at__isnull=True).update(
        sent_at=now or timezone.now(), transport=transport.name, destination=destination[:500],
        attempts=export.attempts + 1, last_error="")
    return True


def export_due(*, today: dt.date | None = None, now: dt.datetime | None = None) -> list[NationalExport]:
    """Export the last quarter for every reporting organization once it is ``OVERSIGHT_EXPORT_DELAY_DAYS`` old,
    and retry what failed to send. What exists already is left as it is."""
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    period = previous_quarter(today)
    year, quarter = parse_quarter(period)
    done = []
    if (today - national.quarter_bounds(year, quarter)[1]).days >= setting("OVERSIGHT_EXPORT_DELAY_DAYS"):
        for organization_id in national.reporting_organization_ids():
            export, _created = export_quarter(actor=None, organization_id=organization_id, period=period, now=now)
            done.append(export)
    for export_id in NationalExport.objects.filter(sent_at__isnull=True).values_list("pk", flat=True):
        send_export(export_id=export_id, now=now)
    return done


# --- duplicate-purchase check -----------------------------------------------------------------


def _purchase_value(value) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError, ValueError) as error:
        raise Invalid("invalid_value", "Not an amount of money.") from error
    if amount <= 0 or amount >= Decimal("1e12"):
        raise Invalid("invalid_value", "The value is out of range.")
    return amount


def check_purchase(*, actor, lab_id: int | None, category_code: str, value, year: int | None = None,
                   now: dt.datetime | None = None) -> queries.PurchaseCheckResult:
    """Run the duplicate-purchase check; a lab manager's check for their lab is kept as evidence."""
    if not (people.is_platform_admin(actor) or people.managed_lab_ids(actor)):
        raise NotFound("not_found", "Not found.")
    lab = None
    if lab_id is not None:
        lab = Lab.objects.filter(pk=lab_id).first()
        if lab is None or not (people.is_lab_manager(actor, lab.pk) or people.is_platform_admin(actor)):
            raise NotFound("not_found", "No such lab.")
    category = Category.objects.filter(pk=category_code).first()
    if category is None:
        raise Invalid("invalid_category", "No such category.")
    amount = _purchase_value(value)
    if year is not None and not 2000 <= year <= 2100:
        raise Invalid("invalid_year", "The year must be between 2000 and 2100.")
    result = queries.purchase_check(actor, category=category, value=amount, year=year)
    if lab is not None and result.required:
        with transaction.atomic():
            check = PurchaseCheck.objects.create(
                lab=lab, user=actor, category=category, value=amount, year=result.year,
                instrument_count=result.counted, average_hours=result.average_hours, saturated=result.saturated,
                created_at=now or timezone.now())
            record(actor=actor, action="oversight.purchase_check.recorded", target=check, now=now,
                   after={"lab_id": lab.pk, "category": category.pk, "value": amount, "year": result.year,
                          "instruments": result.counted, "average_hours": result.average_hours,
                          "saturated": result.saturated})
        result.check_id = check.pk
    return result
