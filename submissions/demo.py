"""Demo sample submissions: sample-mode instruments with a sample service and a list of analyses, and a
request in every state, made through the services as the people would have. Idempotent: a request is
keyed by its demo note."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Exists, OuterRef
from django.utils import timezone

from catalog.models import BookingPolicy, Instrument
from instrumentshare.accounts.models import Membership, User
from instrumentshare.core.errors import DomainError

from . import services
from .models import Analysis, RequestEvent, SampleRequest

ANALYSES = [("QUAL", "定性分析", "Qualitative analysis", "180.00"), ("QUANT", "定量分析", "Quantitative analysis",
                                                                        "260.00")]
STATES = ["submitted", "quoted", "accepted", "received", "scheduled", "in_progress", "delivered", "completed",
          "declined", "cancelled", "rejected"]
PDF = b"%PDF-1.4\n% demo result\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _instruments() -> list[Instrument]:
    managed = Membership.objects.filter(lab_id=OuterRef("lab_id"), role=Membership.Role.MANAGER)
    return list(Instrument.objects.filter(
        listing_state=Instrument.ListingState.PUBLISHED, share_mode=Instrument.ShareMode.EXTERNAL,
        status=Instrument.Status.NORMAL, policy__mode=BookingPolicy.Mode.SAMPLES).filter(Exists(managed))
        .select_related("lab", "policy").order_by("id")[:3])


def _offer(instrument: Instrument, manager: User) -> list[int]:
    if not Analysis.objects.filter(instrument=instrument).exists():
        services.set_sample_service(actor=manager, instrument_id=instrument.pk, turnaround_days=7,
                                    sample_requirements="每份样品不少于 50 mg，密封并标注编号。",
                                    safety_requirements="危险样品须附 MSDS 与安全说明。")
        for code, name_zh, name_en, price in ANALYSES:
            services.add_analysis(actor=manager, instrument_id=instrument.pk, code=code, name_zh=name_zh,
                                  name_en=name_en, price_per_sample=Decimal(price))
    return list(Analysis.objects.filter(instrument=instrument).values_list("pk", flat=True))


def _advance(request: SampleRequest, target: str, manager: User, requester: User, now: dt.datetime) -> None:
    """Move a new request to ``target`` the way the people would, a day a step, ending before ``now``."""
    steps = STATES.index(target) if target in STATES[:8] else {"declined": 1, "cancelled": 0, "rejected": 0}[target]
    day = now - dt.timedelta(days=steps + 2)

    def at(step: int) -> dt.datetime:
        return day + dt.timedelta(days=step)

    if steps >= 1:
        services.quote_request(actor=manager, request_id=request.pk, now=at(1),
                               valid_until=(now + dt.timedelta(days=20)).date(), discount_percent=Decimal("5"),
                               items=[services.ItemIn(f"{a.name_zh} {a.name_en}", request.sample_count,
                                                      a.price_per_sample, "sample", a.pk)
                                      for a in request.analyses.all()])
    if target == "declined":
        services.decline_quote(actor=requester, request_id=request.pk, reason="预算不足 Over budget", now=at(1))
        return
    if target == "cancelled":
        services.cancel_request(actor=requester, request_id=request.pk, reason="样品已另行送检", now=at(0))
        return
    if target == "rejected":
        services.reject_request(actor=manager, request_id=request.pk, reason="本仪器不能测液体样品", now=at(0))
        return
    if steps >= 2:
        services.accept_quote(actor=requester, request_id=request.pk, now=at(2))
    if steps >= 3:
        services.receive_samples(actor=manager, request_id=request.pk, now=at(3))
    if target == "scheduled":
        start = (now + dt.timedelta(days=3)).astimezone(request.instrument.zone).replace(hour=20, minute=0, second=0,
                                                                                          microsecond=0)
        services.schedule_work(actor=manager, request_id=request.pk, start=start, end=start + dt.timedelta(hours=2),
                               now=at(4))
        return
    if steps >= 5:
        services.start_work(actor=manager, request_id=request.pk, now=at(5))
    if steps >= 6:
        services.add_attachment(actor=manager, request_id=request.pk, name="results.pdf", content=PDF, now=at(6))
        services.deliver_results(actor=manager, request_id=request.pk, now=at(6))
    if steps >= 7:
        services.complete_request(actor=requester, request_id=request.pk, now=at(7))
        services.rate_request(user=requester, request_id=request.pk, rating=5, now=at(7))


def seed(stdout=None) -> dict:
    now = timezone.now()
    requesters = list(User.objects.filter(username__in=["researcher", "researcher2", "company"]).order_by("username"))
    instruments = _instruments()
    if not requesters or not instruments:
        if stdout:
            stdout.write("demo sample submissions: no sample-mode demo instruments yet")
        return {}
    made = 0
    for instrument in instruments:
        manager = Membership.objects.filter(lab=instrument.lab, role=Membership.Role.MANAGER).first().user
        analysis_ids = _offer(instrument, manager)
        for index, target in enumerate(STATES):
            note = f"demo:{target}"
            if SampleRequest.objects.filter(instrument=instrument, note=note).exists():
                continue
            requester = requesters[index % len(requesters)]
            try:
                request = services.create_request(
                    user=requester, instrument_id=instrument.pk, sample_count=2 + index % 4,
                    sample_type="海水沉积物 Marine sediment", sample_state="powder", analysis_ids=analysis_ids,
                    after_use="dispose" if index % 2 else "return", note=note,
                    now=now - dt.timedelta(days=12))
                _advance(request, target, manager, requester, now)
            except DomainError as error:
                if stdout:
                    stdout.write(f"demo sample request {target} on {instrument.pk} skipped: {error.detail}\n")
                continue
            made += 1
    # No e-mail for history: these went out when the people did it.
    RequestEvent.objects.filter(mailed_at__isnull=True, request__note__startswith="demo:").update(mailed_at=now)
    if stdout:
        stdout.write(f"demo sample submissions: {made} new requests on {len(instruments)} instruments")
    return {"requests": made}
