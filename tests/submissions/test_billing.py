"""A completed sample request is billed once at the month's close, exported like any charge, and carried
by the service record (way ``sample``) into the national export."""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import BillingAccount, Charge, Invoice, SubmissionAccount
from billing.services.closing import close_period
from oversight import national
from submissions import services
from tests.billing.conftest import SHANGHAI
from usage.models import BillableItem, ServiceRecord

from .conftest import PDF

pytestmark = pytest.mark.django_db


def october(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 10, day, hour, tzinfo=SHANGHAI)


def completed_request(world, instrument, *, user=None, extras=None, discount="10"):
    user = user or world.researcher
    analyses = list(instrument.analyses.values_list("pk", flat=True))
    request = services.create_request(user=user, instrument_id=instrument.pk, sample_count=3,
                                      sample_type="TiO2 powder", sample_state="powder", analysis_ids=analyses,
                                      extras=extras, now=october(5))
    lab = world.manager
    services.quote_request(actor=lab, request_id=request.pk, valid_until=dt.date(2026, 10, 31),
                           discount_percent=Decimal(discount), now=october(6), items=[
                               services.ItemIn("Phase analysis", 3, Decimal("200.00"), "sample", analyses[0]),
                               services.ItemIn("Crystallinity", 3, Decimal("150.00"), "analysis", analyses[1]),
                               services.ItemIn("Report", 1, Decimal("33.33"), "item")])
    services.accept_quote(actor=user, request_id=request.pk, now=october(7))
    services.receive_samples(actor=lab, request_id=request.pk, now=october(8))
    services.start_work(actor=lab, request_id=request.pk, now=october(9))
    services.add_attachment(actor=lab, request_id=request.pk, name="r.pdf", content=PDF, now=october(10))
    services.deliver_results(actor=lab, request_id=request.pk, now=october(10))
    return services.complete_request(actor=user, request_id=request.pk, now=october(12))


def test_completion_writes_one_item_per_quote_line_adding_up_to_the_quote(world, sample_instrument):
    request = completed_request(world, sample_instrument)
    items = list(BillableItem.objects.filter(sample_request=request).order_by("line"))
    assert [(i.line, i.unit, i.quantity, i.kind) for i in items] == [
        (1, "sample", 3, "sample"), (2, "analysis", 3, "sample"), (3, "use", 1, "sample")]
    # (600 + 450 + 33.33) × 0.9 = 974.997 → 975.00; the lines share it to the cent.
    assert request.quote.total == Decimal("975.00")
    assert sum(i.agreed_amount for i in items) == Decimal("975.00")
    record = ServiceRecord.objects.get(item__sample_request=request)
    assert record.way == "sample" and record.samples == 3 and record.user == world.researcher
    # Completing again adds nothing.
    services.complete_request(actor=world.researcher, request_id=request.pk, now=october(13))
    assert BillableItem.objects.filter(sample_request=request).count() == 3
    services.rate_request(user=world.researcher, request_id=request.pk, rating=4, now=october(14))
    record.refresh_from_db()
    assert record.rating == 4


def test_closing_the_month_bills_completed_requests_exactly_once(world, sample_instrument, api_as):
    project = billing_services.create_account(actor=world.finance, kind="project", organization=world.org_a,
                                              number="NSFC-1", name="Catalysis", pi=world.manager)
    billing_services.create_account(actor=world.finance, kind="cost_centre", organization=world.org_a,
                                    lab=world.lab_a, number="CC-A", name="Lab A")
    billing_services.authorize_user(actor=world.manager, account_id=project.pk, user=world.researcher)
    request = completed_request(world, sample_instrument, extras={"account_id": project.pk})
    assert SubmissionAccount.objects.get(request=request).account == project

    close_period(actor=world.finance, month="2026-10", now=october(31, 23) + dt.timedelta(days=2))
    charges = list(Charge.objects.filter(item__sample_request=request))
    assert len(charges) == 3 and {c.account_id for c in charges} == {project.pk}
    assert sum(c.amount for c in charges) == Decimal("975.00")
    assert all(c.period == "2026-10" and c.invoice_id for c in charges)
    invoice = Invoice.objects.get(pk=charges[0].invoice_id)
    assert invoice.account_id == project.pk and invoice.subtotal == Decimal("975.00")

    close_period(actor=world.finance, month="2026-10", now=october(31, 23) + dt.timedelta(days=3))
    billing_services.charge_items(before=october(31, 23) + dt.timedelta(days=40), now=october(31, 23))
    assert Charge.objects.filter(item__sample_request=request).count() == 3

    record = ServiceRecord.objects.get(item__sample_request=request)
    assert record.fee is not None and record.project == "NSFC-1 Catalysis"

    export = api_as(world.finance).get("/billing/export?period=2026-10&format=csv")
    assert export.status_code == 200
    text = b"".join(export.streaming_content).decode("utf-8-sig")
    assert "X射线衍射仪" in text and all(str(charge.amount) in text for charge in charges)


def test_the_national_export_carries_the_sample_service(world, sample_instrument):
    request = completed_request(world, sample_instrument)
    services.rate_request(user=world.researcher, request_id=request.pk, rating=5, now=october(14))
    payload = national.build_payload(organization=world.org_a, year=2026, quarter=4, now=october(20))
    samples = [r for r in payload["service_records"] if r["way"] == "sample"]
    assert len(samples) == 1 and samples[0]["samples"] == 3 and samples[0]["rating"] == 5


def test_the_pi_of_the_account_decides_on_the_quote(world, sample_instrument, api_as):
    project = billing_services.create_account(actor=world.finance, kind="project", organization=world.org_a,
                                              number="NSFC-2", name="Optics", pi=world.finance)
    billing_services.authorize_user(actor=world.finance, account_id=project.pk, user=world.researcher)
    analyses = list(sample_instrument.analyses.values_list("pk", flat=True))
    request = services.create_request(user=world.researcher, instrument_id=sample_instrument.pk, sample_count=1,
                                      sample_type="glass", sample_state="solid", analysis_ids=analyses,
                                      extras={"account_id": project.pk})
    services.quote_request(actor=world.manager, request_id=request.pk, valid_until=dt.date.today() + dt.timedelta(9),
                           items=[services.ItemIn("Phase analysis", 1, Decimal("200.00"))])
    assert api_as(world.other_researcher).get(f"/submissions/{request.pk}").status_code == 404
    accepted = api_as(world.finance).post(f"/submissions/{request.pk}/accept")
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    assert accepted.json()["account_id"] == project.pk
    assert BillingAccount.objects.get(pk=project.pk).pi == world.finance


def test_oversight_counts_samples_and_turnaround_per_instrument_lab_and_organization(world, sample_instrument,
                                                                                      api_as):
    from oversight import queries as oversight_queries
    from oversight import services as oversight_services
    from oversight.queries import Scope

    completed_request(world, sample_instrument)   # received on the 8th, delivered on the 10th: 2 days
    completed_request(world, sample_instrument, user=world.other_researcher)
    oversight_services.refresh_statistics(year=2026)
    for by, key in (("instrument", sample_instrument.pk), ("lab", world.lab_a.pk), ("organization", world.org_a.pk)):
        row = next(r for r in oversight_queries.summarize(Scope(everything=True), year=2026, by=by) if r.key == key)
        assert (row.sample_requests, row.samples, row.average_turnaround_days) == (2, 6, Decimal("2.0")), by
    figures = api_as(world.bureau).get("/oversight/statistics?year=2026&by=instrument").json()
    mine = next(r for r in figures["items"] if r["key"] == str(sample_instrument.pk))
    assert mine["sample_requests"] == 2 and Decimal(mine["average_turnaround_days"]) == Decimal("2.0")
    report = national.build_payload(organization=world.org_a, year=2026, quarter=4, now=october(20))
    assert report["annual_report"]["sample_requests"] == 2 and report["annual_report"]["samples"] == 6
