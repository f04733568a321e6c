"""The demo city: billing's seed is idempotent, and a month of demo-like usage closes into invoices whose
totals equal their charges, with Blue Sea's voucher applied within its caps; closing again changes nothing."""

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing import demo as billing_demo
from billing.models import BillingAccount, Charge, Invoice, RateCard, Voucher
from billing.services import closing
from catalog import demo as catalog_demo
from catalog.models import Instrument
from instrumentshare.accounts import demo as accounts_demo
from instrumentshare.accounts.models import User
from tests.billing.conftest import SHANGHAI, make_item

pytestmark = pytest.mark.django_db
MONTH = "2026-10"


@pytest.fixture
def demo_city():
    accounts_demo.seed()
    catalog_demo.seed()
    billing_demo.seed()


def test_the_seed_is_idempotent_and_a_month_of_demo_usage_closes_into_invoices_that_add_up(demo_city):
    counts = (BillingAccount.objects.count(), RateCard.objects.count(), Voucher.objects.count())
    assert billing_demo.seed() == {"cost_centres": 0, "payers": 0, "rate_cards": 0}
    assert (BillingAccount.objects.count(), RateCard.objects.count(), Voucher.objects.count()) == counts
    assert RateCard.objects.count() == Instrument.objects.count() > 100
    assert Voucher.objects.get().company.name_zh == "青岛蓝海生物科技有限公司"

    people = {u.username: u for u in User.objects.filter(username__in=["researcher", "researcher2", "company",
                                                                         "labmanager", "labmanager2"])}
    instruments = list(Instrument.objects.filter(listing_state="published").order_by("pk")[:40])
    chance = random.Random(2026)
    for day in range(1, 32):
        for _ in range(4):
            user = people[chance.choice(list(people))]
            start = dt.datetime(2026, 10, day, chance.randint(8, 16), tzinfo=SHANGHAI)
            unit = chance.choice(["hour", "hour", "hour", "sample", "use"])
            make_item(chance.choice(instruments), user, start=start, unit=unit,
                      quantity=chance.randint(15, 300) if unit == "hour" else chance.randint(1, 12))
    now = dt.datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
    closing.close_period(actor=None, month=MONTH, now=now)

    charges = Charge.objects.filter(period=MONTH)
    assert charges.count() == 31 * 4
    invoices = Invoice.objects.filter(period=MONTH, kind="invoice")
    assert invoices.aggregate(total=Sum("subtotal"))["total"] == charges.aggregate(total=Sum("amount"))["total"]
    for invoice in invoices:
        assert invoice.subtotal == sum(c.amount for c in invoice.charges.all())
        assert invoice.lines.count() == invoice.charges.values("instrument").distinct().count()
    voucher = Voucher.objects.get()
    redeemed = voucher.amount - voucher.balance
    company_invoices = invoices.filter(account__organization=voucher.company)
    assert redeemed == sum(i.voucher_amount for i in company_invoices) > 0
    assert redeemed <= min(voucher.amount, voucher.yearly_cap)
    for invoice in company_invoices:
        assert invoice.voucher_amount <= invoice.subtotal * Decimal("0.40") + Decimal("0.01") * invoice.charges.count()

    snapshot = sorted(invoices.values_list("number", "subtotal", "voucher_amount", "amount_due"))
    closing.close_period(actor=None, month=MONTH, now=now + dt.timedelta(days=1))
    assert sorted(Invoice.objects.filter(period=MONTH).values_list(
        "number", "subtotal", "voucher_amount", "amount_due")) == snapshot
