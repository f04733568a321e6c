"""Innovation vouchers: the share of eligible charges, within balance and yearly cap; a ledger that sums."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.db.models import Sum

from billing import services
from billing.models import Charge, Invoice, Voucher, VoucherEntry
from billing.services import closing
from instrumentshare.audit.models import AuditEvent
from tests.billing.conftest import MONTH, after_month, at, make_item

pytestmark = pytest.mark.django_db


def voucher(world, **extra) -> Voucher:
    fields = {"amount": "1000.00", "share_percent": "40", "valid_from": dt.date(2026, 1, 1),
              "valid_until": dt.date(2026, 12, 31), **extra}
    return services.issue_voucher(actor=world.bureau, company=world.company, **fields)


def assert_ledger_sums(v: Voucher) -> None:
    v.refresh_from_db()
    assert v.entries.aggregate(total=Sum("amount"))["total"] == v.balance
    last = v.entries.order_by("-id").first()
    assert last.balance_after == v.balance


def company_invoice(billing) -> Invoice:
    return Invoice.objects.get(account=billing.company, kind="invoice")


def test_the_voucher_pays_its_share_and_the_company_the_rest(world, billing):
    v = voucher(world)
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)   # 300.00
    make_item(billing.instrument, world.company_user, start=at(9), minutes=30)   # 150.00
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = company_invoice(billing)
    assert invoice.subtotal == Decimal("450.00")
    assert invoice.voucher_amount == Decimal("180.00")
    assert invoice.amount_due == Decimal("270.00")
    assert sum(line.voucher_amount for line in invoice.lines.all()) == invoice.voucher_amount
    v.refresh_from_db()
    assert v.balance == Decimal("820.00")
    assert_ledger_sums(v)
    assert AuditEvent.objects.filter(action="billing.voucher.redeemed", target_id=str(v.pk)).count() == 1


def test_the_voucher_never_pays_more_than_its_balance(world, billing):
    v = voucher(world, amount="100.00")
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)   # share 120 > balance 100
    make_item(billing.instrument, world.company_user, start=at(9), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    assert company_invoice(billing).voucher_amount == Decimal("100.00")
    v.refresh_from_db()
    assert v.balance == Decimal("0.00")
    assert_ledger_sums(v)


def test_the_yearly_cap_counts_every_voucher_of_the_company(world, billing):
    first = voucher(world, yearly_cap="150.00", valid_until=dt.date(2026, 11, 30))
    second = voucher(world, yearly_cap="150.00")
    for day in (5, 6, 7):
        make_item(billing.instrument, world.company_user, start=at(day), minutes=60)   # share 120 each
    closing.close_period(actor=None, month=MONTH, now=after_month())
    assert company_invoice(billing).voucher_amount == Decimal("150.00")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.amount - first.balance) + (second.amount - second.balance) == Decimal("150.00")


def test_an_expired_voucher_is_not_applied(world, billing):
    voucher(world, valid_until=dt.date(2026, 10, 7))    # expired the day before the use
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    assert company_invoice(billing).voucher_amount == Decimal("0.00")


def test_a_voucher_pays_for_use_on_its_last_day_although_the_month_closes_after_it_expired(world, billing):
    # Regression: validity was checked on the day of the close, so a voucher's last month was never paid.
    voucher(world, valid_until=dt.date(2026, 10, 31))
    make_item(billing.instrument, world.company_user, start=at(31, hour=23), minutes=30)   # 15:00 UTC: still the 31st
    closing.close_period(actor=None, month=MONTH, now=after_month())                      # 3 November
    assert company_invoice(billing).voucher_amount == Decimal("60.00")


def test_a_voucher_valid_from_the_next_month_does_not_pay_for_this_one(world, billing):
    # Regression: a voucher valid on the day of the close paid for use before it was valid.
    voucher(world, valid_from=dt.date(2026, 11, 1))
    make_item(billing.instrument, world.company_user, start=at(31, hour=23), minutes=30)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    assert company_invoice(billing).voucher_amount == Decimal("0.00")


def test_december_closed_in_january_is_paid_by_that_years_voucher_and_counts_in_that_years_cap(world, billing):
    this_year = voucher(world, yearly_cap="100.00")                                         # valid to 31 Dec 2026
    next_year = voucher(world, valid_from=dt.date(2027, 1, 1), valid_until=dt.date(2027, 12, 31))
    make_item(billing.instrument, world.company_user, start=at(31, hour=22, month="2026-12"), minutes=60)
    closing.close_period(actor=None, month="2026-12", now=after_month("2026-12"))           # 3 January 2027
    assert company_invoice(billing).voucher_amount == Decimal("100.00")                    # capped, not 120
    this_year.refresh_from_db()
    next_year.refresh_from_db()
    assert this_year.balance == Decimal("900.00") and next_year.balance == next_year.amount
    assert VoucherEntry.objects.get(voucher=this_year, kind="redeem").year == 2026


def test_a_voucher_pays_only_at_eligible_providers(world, billing):
    voucher(world, eligible_providers=[world.org_b])
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    assert company_invoice(billing).voucher_amount == Decimal("0.00")


def test_no_service_record_is_redeemed_twice(world, billing):
    v = voucher(world)
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    charge = Charge.objects.get(account=billing.company)
    with pytest.raises(IntegrityError):
        VoucherEntry.objects.create(voucher=v, kind="redeem", amount=Decimal("-1.00"), balance_after=Decimal("1"),
                                    charge=charge, year=2026)


def test_a_full_credit_note_gives_the_voucher_its_money_back(world, billing):
    v = voucher(world)
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = company_invoice(billing)
    note = closing.issue_credit_note(actor=world.finance, invoice_id=invoice.pk, reason="Wrong instrument billed")
    assert note.kind == "credit_note" and note.number.startswith("CN-")
    assert note.amount_due == invoice.amount_due
    invoice.refresh_from_db()
    assert invoice.state == "credited" and invoice.outstanding == 0
    v.refresh_from_db()
    assert v.balance == v.amount
    assert_ledger_sums(v)


def test_only_the_bureau_issues_vouchers_and_only_to_companies(world):
    with pytest.raises(Exception) as refused:
        services.issue_voucher(actor=world.finance, company=world.company, amount="10", share_percent="40",
                               valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    assert refused.value.status == 403
    with pytest.raises(Exception) as refused:
        services.issue_voucher(actor=world.bureau, company=world.org_a, amount="10", share_percent="40",
                               valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    assert refused.value.code == "not_a_company"
