"""The lab's side of a sample service: the turnaround target, the requirements, the list of analyses."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.audit.services import changes, record
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from instrumentshare.core.money import money

from ..models import Analysis, SampleService

SERVICE_FIELDS = ("turnaround_days", "safety_requirements", "sample_requirements", "max_samples")


def _managed(actor, instrument_id: int) -> Instrument:
    instrument = Instrument.objects.filter(pk=instrument_id).first()
    if instrument is None or not catalog_queries.can_see(actor, instrument):
        raise NotFound("not_found", "No such instrument.")
    if not catalog_queries.can_manage(actor, instrument):
        raise Forbidden("forbidden", "Only a manager of the instrument's lab sets its sample service.")
    return instrument


@transaction.atomic
def set_sample_service(*, actor, instrument_id: int, turnaround_days: int, safety_requirements: str = "",
                       sample_requirements: str = "", max_samples: int = 200) -> SampleService:
    instrument = _managed(actor, instrument_id)
    if not 1 <= turnaround_days <= 365:
        raise Invalid("invalid_turnaround", "The turnaround target is 1 to 365 days.")
    if not 1 <= max_samples <= 10000:
        raise Invalid("invalid_max_samples", "A request may hold 1 to 10,000 samples.")
    service, _created = SampleService.objects.select_for_update().get_or_create(instrument=instrument)
    before = changes(service, SERVICE_FIELDS)
    service.turnaround_days, service.max_samples = turnaround_days, max_samples
    service.safety_requirements = (safety_requirements or "").strip()[:4000]
    service.sample_requirements = (sample_requirements or "").strip()[:4000]
    service.save()
    record(actor=actor, action="submission.service_set", target=instrument, before=before,
           after=changes(service, SERVICE_FIELDS))
    return service


@transaction.atomic
def add_analysis(*, actor, instrument_id: int, code: str, name_zh: str, name_en: str = "",
                 price_per_sample: Decimal = Decimal("0")) -> Analysis:
    instrument = _managed(actor, instrument_id)
    code, name_zh = (code or "").strip()[:30], (name_zh or "").strip()[:200]
    if not code or not name_zh:
        raise Invalid("invalid_analysis", "An analysis has a code and a Chinese name.")
    if Decimal(price_per_sample) < 0:
        raise Invalid("invalid_price", "A price cannot be negative.")
    try:
        with transaction.atomic():
            analysis = Analysis.objects.create(instrument=instrument, code=code, name_zh=name_zh,
                                               name_en=(name_en or "").strip()[:200],
                                               price_per_sample=money(price_per_sample))
    except IntegrityError as error:
        raise Conflict("analysis_exists", f"This instrument already offers an analysis {code}.") from error
    record(actor=actor, action="submission.analysis_added", target=instrument,
           after={"analysis_id": analysis.pk, "code": code, "price_per_sample": str(analysis.price_per_sample)})
    return analysis
