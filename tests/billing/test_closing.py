"""Closing a month: charges from billable items, one invoice per account, numbers, idempotence."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import BillingPeriod, Charge, Invoice, InvoiceSequence
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item
from usage.models import BillableItem, ServiceRecord

pytestmark = pytest.mark.django_db


def invoice_snapshot():
    return [(i.number, i.account_id, i.period, i.subtotal, i.voucher_amount, i.amount_due,
             [(line.position, line.instrument_id, line.amount) for line in i.lines.all()])
            for i in Invoice.objects.order_by("number")]


def test_a_month_closes_into_one_invoice_per_account_with_totals_equal_to_its_charges(world, billing):
    instrument = billing.instrument
    make_item(instrument, world.researcher, start=at(5), minutes=90)            # internal 100/h → 150.00
    make_item(instrument, world.researcher, start=at(6), minutes=20)            # 33.33
    make_item(instrument, world.other_researcher, start=at(7), minutes=45)      # academic 200/h → 150.00
    make_item(instrument, world.company_user, start=at(8), minutes=60)          # industry 300/h → 300.00
    make_item(instrument, world.company_user, start=at(9), unit="sample", quantity=3, samples=3)  # 360.00

    periods = closing.close_period(actor=None, month=MONTH, now=after_month())

    assert [p.state for p in periods] == ["closed"]
    assert Charge.objects.count() == 5
    invoices = {i.account_id: i for i in Invoice.objects.all()}
    assert set(invoices) == {billing.lab_a.pk, billing.lab_b.pk, billing.company.pk}
    assert invoices[billing.lab_a.pk].subtotal == Decimal("183.33")
    assert invoices[billing.lab_b.pk].subtotal == Decimal("150.00")
    assert invoices[billing.company.pk].subtotal == Decimal("660.00")
    for invoice in invoices.values():
        assert invoice.subtotal == sum(c.amount for c in invoice.charges.all())
        assert invoice.subtotal == sum(line.amount for line in invoice.lines.all())
        assert invoice.issuer_id == world.org_a.pk
    assert set(BillableItem.objects.values_list("state", flat=True)) == {"billed"}
    fees = sorted(ServiceRecord.objects.values_list("fee", flat=True))
    assert fees == sorted(Charge.objects.values_list("amount", flat=True))


def test_invoice_numbers_are_gapless_per_issuer_and_year(world, billing):
    for user in (world.researcher, world.other_researcher, world.company_user):
        make_item(billing.instrument, user, start=at(5), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    numbers = sorted(Invoice.objects.values_list("sequence", flat=True))
    assert numbers == [1, 2, 3]
    assert InvoiceSequence.objects.get(organization=world.org_a, series="INV").last == 3
    assert all(n.startswith("INV-") and n.endswith(f"-2026-00000{s}") for n, s in
               Invoice.objects.values_list("number", "sequence"))


def test_closing_twice_changes_nothing_and_late_charges_go_to_the_next_period(world, billing):
    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    call_command("close_period", MONTH, "--now", after_month().isoformat())
    before = invoice_snapshot()
    late = make_item(billing.instrument, world.researcher, start=at(28), minutes=30)
    call_command("close_period", MONTH, "--now", after_month().isoformat())
    assert invoice_snapshot() == before
    assert not Charge.objects.filter(item=late).exists()

    # The next month's close picks the late item up, in that month.
    next_month = "2026-11"
    closing.close_period(actor=None, month=next_month, now=after_month(next_month))
    charge = Charge.objects.get(item=late)
    assert charge.period == next_month and charge.invoice.period == next_month
    assert Invoice.objects.count() == 2


def test_a_price_change_never_rewrites_past_charges(world, billing):
    from billing import services
    from tests.billing.conftest import RATES, make_card

    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    old = Charge.objects.get()
    with pytest.raises(Exception) as refused:
        make_card(billing.instrument, valid_from=dt.date(2026, 10, 1))
    assert getattr(refused.value, "code", "") == "rate_card_backdated"
    dearer = [dict(rate, price=str(Decimal(rate["price"]) * 2)) for rate in RATES]
    services.create_rate_card(actor=None, instrument_id=billing.instrument.pk, valid_from=dt.date(2026, 11, 1),
                              rates=dearer)
    make_item(billing.instrument, world.researcher, start=at(3, month="2026-11"), minutes=60)
    closing.close_period(actor=None, month="2026-11", now=after_month("2026-11"))
    old.refresh_from_db()
    assert old.amount == Decimal("100.00")
    assert Charge.objects.exclude(pk=old.pk).get().amount == Decimal("200.00")


def test_items_without_an_account_or_a_price_stay_open_and_are_counted(world, billing):
    from instrumentshare.accounts import services as accounts

    loner = accounts.create_user(actor=None, username="loner", password="x-long-password", organization=None)
    item = make_item(billing.instrument, loner, start=at(5), minutes=60)
    period = closing.close_period(actor=None, month=MONTH, now=after_month())[0]
    item.refresh_from_db()
    assert item.state == "open"
    assert period.unassigned_items == 1
    assert BillingPeriod.objects.get(pk=period.pk).state == "closed"


def test_an_issued_invoice_never_changes_and_is_never_deleted(world, billing):
    from billing.models import ImmutableError

    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = Invoice.objects.get()
    with pytest.raises(ImmutableError):
        invoice.delete()
    with pytest.raises(ImmutableError):
        Invoice.objects.all().delete()
    with pytest.raises(ImmutableError):
        Invoice.objects.update(subtotal=Decimal("1.00"))
    invoice.payer_name = "Someone else"
    with pytest.raises(ImmutableError):
        invoice.save()
    with pytest.raises(ImmutableError):
        invoice.lines.first().delete()


def test_the_rate_card_of_the_service_day_in_the_instruments_own_zone_applies_across_a_dst_change(world):
    """Berlin leaves summer time on 2026-10-25; a card from that day prices use from local midnight on."""
    from zoneinfo import ZoneInfo

    from tests.billing.conftest import RATES, make_card
    from tests.bookings.conftest import make_instrument

    berlin = ZoneInfo("Europe/Berlin")
    instrument = make_instrument(world, name="Berlin SEM", zone="Europe/Berlin")
    make_card(instrument, valid_from=dt.date(2026, 1, 1))
    make_card(instrument, valid_from=dt.date(2026, 10, 25),
              rates=[dict(rate, price=str(Decimal(rate["price"]) * 3)) for rate in RATES])
    from billing import services

    services.create_account(actor=None, kind="cost_centre", organization=world.org_a, lab=world.lab_a,
                            number="CC-A", name="Lab A")
    before = make_item(instrument, world.researcher, start=dt.datetime(2026, 10, 24, 23, 30, tzinfo=berlin))
    after = make_item(instrument, world.researcher, start=dt.datetime(2026, 10, 25, 0, 30, tzinfo=berlin))
    # 00:30 Berlin on the 25th is still the 24th in UTC (22:30Z) and in Shanghai it is already 06:30.
    assert after.service_start.astimezone(dt.UTC).day == 24
    closing.close_period(actor=None, month=MONTH, now=after_month())
    assert Charge.objects.get(item=before).amount == Decimal("100.00")
    assert Charge.objects.get(item=after).amount == Decimal("300.00")
