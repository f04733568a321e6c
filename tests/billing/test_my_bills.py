"""我的账单: totals from the rows invoices are made of, for any number of charges; a page that says what it shows."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing import services
from billing.models import Charge, Invoice
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item

pytestmark = pytest.mark.django_db

ITEMS = 130   # more than two pages of 50, and more than the old "latest 100"


@pytest.fixture
def many_charges(world, billing):
    services.issue_voucher(actor=world.bureau, company=world.company, amount="5000", share_percent="40",
                           valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    for index in range(ITEMS):
        # Different lengths, so a total of a subset would differ from the whole.
        make_item(billing.instrument, world.company_user, start=at(1 + index % 28, 8 + index % 9),
                  minutes=30 + (index % 7) * 15)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    # And one more item in the next month, not charged yet: an estimate, not part of the invoice.
    make_item(billing.instrument, world.company_user, start=at(2, month="2026-11"), minutes=60)
    return Invoice.objects.filter(account=billing.company, kind=Invoice.Kind.INVOICE)


def test_the_company_bill_page_totals_equal_its_invoices_over_several_pages(world, client, many_charges):
    invoices = many_charges.aggregate(subtotal=Sum("subtotal"), due=Sum("amount_due"))
    assert Charge.objects.filter(user=world.company_user).count() == ITEMS
    client.force_login(world.company_user)
    first = client.get("/billing/mine/")
    assert first.status_code == 200
    totals, company = first.context["totals"], first.context["company_totals"]
    assert totals["charged"] == invoices["subtotal"] == sum(c.amount for c in Charge.objects.all())
    assert company["services"] == invoices["subtotal"] and company["due"] == invoices["due"]
    assert totals["invoiced"] == invoices["subtotal"] and totals["estimated"] > Decimal("0")
    assert len(first.context["costs"]) == 50
    page = first.content.decode()
    assert "1–50" in page and str(ITEMS + 1) in page and 'data-testid="cost-pages"' in page
    last = client.get("/billing/mine/", {"page": 3})
    assert len(last.context["costs"]) == ITEMS + 1 - 100 and last.context["totals"] == totals
    assert client.get("/billing/mine/", {"page": "x"}).status_code == 200   # a bad page number is the first page
