"""The quarterly report to the national instrument-sharing platform: record shapes and transport.

An organization reports its publicly funded instruments valued from ``NATIONAL_REPORT_VALUE``
(the same rule the compliance report applies), the service records of the quarter on them, and
its annual report for the year so far. The shapes follow the fields the national platform's
record asks for (instrument: names, codes, value, funds, share mode, status, specifications,
service content, fees, address, contact, annual run and service hours; service record: times,
amount, way, internal/external, direction, applicant and organization, project and funding
programme, fee, rating), in English keys; the exact wire format of the platform is for the
transport that will send there.

The transport is one interface, ``Transport``: today ``LocalFileTransport`` writes each export
under ``var/exports/``; sending to the national platform is a new class with the same ``send``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.module_loading import import_string

from catalog.models import Instrument
from instrumentshare.accounts.models import Organization
from instrumentshare.audit.services import seal_head
from usage.models import ServiceRecord

from . import evaluation, queries
from .conf import export_dir, setting
from .models import InstrumentMonthStat, NationalExport
from .stats import platform_zone

SCHEMA = "instrumentshare.national-export/1"


# --- the transport --------------------------------------------------------------------------


class Transport(Protocol):
    name: str

    def send(self, *, export: NationalExport, content: bytes) -> str:
        """Deliver one export; return where it went (a path, a receipt number). Raise on failure."""


class LocalFileTransport:
    """Writes ``<OVERSIGHT_EXPORT_DIR>/<organization id>/<period>.json``, atomically (temp file, rename)."""

    name = "local-file"

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory else export_dir()

    def send(self, *, export: NationalExport, content: bytes) -> str:
        folder = self.directory / str(export.organization_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{export.period}.json"
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".json")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return str(target)


def get_transport() -> Transport:
    return import_string(setting("OVERSIGHT_EXPORT_TRANSPORT"))()


# --- periods and who reports --------------------------------------------------------------------


def quarter_bounds(year: int, quarter: int) -> tuple[dt.date, dt.date]:
    first_month = 3 * (quarter - 1) + 1
    last_month = first_month + 2
    return dt.date(year, first_month, 1), dt.date(year, last_month, calendar.monthrange(year, last_month)[1])


def reportable_instruments(organization_id: int | None = None):
    queryset = Instrument.objects.filter(Q(funded_central=True) | Q(funded_local=True),
                                         original_value__gte=settings.NATIONAL_REPORT_VALUE)
    if organization_id is not None:
        queryset = queryset.filter(organization_id=organization_id)
    return queryset


def reporting_organization_ids() -> list[int]:
    return sorted(set(reportable_instruments().values_list("organization_id", flat=True)))


# --- record shapes --------------------------------------------------------------------------------


def _text(value) -> str:
    return str(value) if value is not None else ""


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def instrument_record(instrument: Instrument, hours: dict) -> dict:
    return {
        "name_zh": instrument.name_zh,
        "name_en": instrument.name_en,
        "asset_number": instrument.asset_number,
        "category_code": instrument.category_id,
        "subject_code": instrument.subject_code,
        "organization": instrument.organization.name_zh,
        "organization_credit_code": instrument.organization.credit_code,
        "lab": instrument.lab.name_zh,
        "affiliation": instrument.affiliation,
        "original_value": _text(instrument.original_value),
        "currency": settings.DEFAULT_CURRENCY,
        "funds": {"central": instrument.funded_central, "local": instrument.funded_local,
                  "own": instrument.funded_own, "other": instrument.funded_other},
        "source": instrument.source,
        "country": instrument.country,
        "manufacturer": instrument.manufacturer,
        "model": instrument.model_number,
        "purchase_date": _date(instrument.purchase_date),
        "acceptance_date": _date(instrument.acceptance_date),
        "purpose": instrument.purpose,
        "share_mode": instrument.share_mode,
        "status": instrument.status,
        "listed": instrument.is_published,
        "specifications": instrument.specifications,
        "main_functions": instrument.main_functions,
        "service_content": instrument.service_content,
        "user_requirements": instrument.user_requirements,
        "fee_standard": instrument.fee_standard,
        "district": instrument.district,
        "address": instrument.address,
        "room": instrument.room,
        "contact": {"name": instrument.contact_name, "phone": instrument.contact_phone,
                    "email": instrument.contact_email},
        "annual_run_hours": _text(hours.get("run", Decimal("0.00"))),
        "annual_service_hours": _text(hours.get("service", Decimal("0.00"))),
    }


def service_record(record: ServiceRecord) -> dict:
    applicant = record.user
    return {
        "instrument_asset_number": record.instrument.asset_number,
        "start": _time(record.start),
        "end": _time(record.end),
        "hours": _text(record.hours),
        "samples": record.samples,
        "way": record.way,
        "internal": record.is_internal,
        "direction": record.direction,
        "applicant": (applicant.full_name or applicant.username) if applicant else "",
        "applicant_organization": record.applicant_organization.name_zh if record.applicant_organization else "",
        "project": record.project,
        "funding_programme": record.funding_programme,
        "fee": _text(record.fee) if record.fee is not None else None,
        "currency": settings.DEFAULT_CURRENCY,
        "rating": record.rating,
    }


def _hours_to_date(instrument_ids: list[int], year: int, last_month: int) -> dict[int, dict]:
    """Effective (run) and external (service) hours of each instrument, January to ``last_month``."""
    rows = InstrumentMonthStat.objects.filter(instrument_id__in=instrument_ids, year=year, month__lte=last_month) \
        .order_by().values("instrument_id").annotate(run=Sum("effective_minutes"), service=Sum("external_minutes"))
    return {row["instrument_id"]: {"run": queries.hours(row["run"] or 0), "service": queries.hours(row["service"] or 0)}
            for row in rows}


def annual_report(organization: Organization, year: int, quarter: int) -> dict:
    """The organization's figures for the year up to the quarter's end (the whole year in Q4)."""
    scope = queries.Scope(organization_ids=frozenset({organization.pk}))
    rows = queries.summarize(scope, year=year, by="city", months=(1, 3 * quarter))
    totals = rows[0] if rows else queries.StatRow(key=None)
    ranked = evaluation.evaluate(year=year)
    mine = next((row for row in ranked if row.organization_id == organization.pk), None)
    return {
        "year": year,
        "through": _date(quarter_bounds(year, quarter)[1]),
        "complete": quarter == 4,
        "instruments": totals.instruments,
        "effective_hours": _text(totals.effective_hours),
        "external_service_hours": _text(totals.external_hours),
        "share_rate": _text(totals.share_rate) if totals.share_rate is not None else None,
        "utilization": _text(totals.utilization) if totals.utilization is not None else None,
        "users": totals.users,
        "external_organizations": totals.external_organizations,
        "service_records": totals.service_records,
        "external_service_records": totals.external_service_records,
        "income": _text(totals.income),
        "external_income": _text(totals.external_income),
        "invoices_issued": totals.invoices,
        "voucher_use": _text(totals.voucher_amount),
        "average_rating": _text(totals.average_rating) if totals.average_rating is not None else None,
        "no_show_rate": _text(totals.no_show_rate) if totals.no_show_rate is not None else None,
        "sample_requests": totals.sample_requests,
        "samples": totals.samples,
        "average_turnaround_days": _text(totals.average_turnaround_days)
        if totals.average_turnaround_days is not None else None,
        "evaluation": mine.as_dict() if mine else None,
    }


def build_payload(*, organization: Organization, year: int, quarter: int, now: dt.datetime | None = None) -> dict:
    first, last = quarter_bounds(year, quarter)
    zone = platform_zone()
    instruments = list(reportable_instruments(organization.pk).select_related("organization", "lab")
                       .order_by("asset_number", "id"))
    hours = _hours_to_date([i.pk for i in instruments], year, 3 * quarter)
    start = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    records = ServiceRecord.objects.filter(instrument__in=instruments, start__gte=start, start__lt=end) \
        .select_related("instrument", "user", "applicant_organization").order_by("start", "id")
    return {
        "schema": SCHEMA,
        "period": f"{year}-Q{quarter}",
        "period_start": first.isoformat(),
        "period_end": last.isoformat(),
        "generated_at": _time(now or timezone.now()),
        "organization": {"name_zh": organization.name_zh, "name_en": organization.name_en,
                         "credit_code": organization.credit_code, "kind": organization.kind},
        "instruments": [instrument_record(i, hours.get(i.pk, {})) for i in instruments],
        "service_records": [service_record(record) for record in records.iterator(chunk_size=2000)],
        "annual_report": annual_report(organization, year, quarter),
        # The audit trail's seal head when this was built: the bureau keeps it, so a later rewrite
        # of the trail is caught by ``verify_audit --expect-head`` (instrumentshare.audit.services).
        "audit_head": _audit_head(),
    }


def _audit_head() -> dict | None:
    head = seal_head()
    return head and {"seq": head["seq"], "hash": head["hash"], "sealed_at": _time(head["sealed_at"])}


def canonical_bytes(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
