"""Billing pages through the test client: who sees which page, the close with its progress, my bills."""

import datetime as dt

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from billing import services
from billing.models import BillingPeriod, Invoice
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item

pytestmark = pytest.mark.django_db


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    client.cookies.load({"django_language": "en"})
    return client


@pytest.fixture
def invoiced(world, billing):
    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    make_item(billing.instrument, world.company_user, start=at(7), minutes=60)
    services.issue_voucher(actor=world.bureau, company=world.company, amount="500", share_percent="40",
                           valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    closing.close_period(actor=None, month=MONTH, now=after_month())
    return Invoice.objects.get(account=billing.company)


def test_the_finance_page_is_for_finance_officers(world):
    assert client_for(world.finance).get(reverse("billing:finance")).status_code == 200
    assert client_for(world.researcher).get(reverse("billing:finance")).status_code == 404
    assert client_for().get(reverse("billing:finance")).status_code == 302


def test_navigation_links_finance_and_my_bills(world):
    body = client_for(world.finance).get(reverse("billing:mine")).content.decode()
    assert 'data-nav="billing:finance"' in body and 'data-nav="billing:mine"' in body
    body = client_for(world.researcher).get(reverse("billing:mine")).content.decode()
    assert 'data-nav="billing:finance"' not in body


@time_machine.travel(after_month())   # a month can be closed once it is over: "today" is in the next one
def test_closing_from_the_page_shows_a_progress_row_that_polls_until_closed(world, billing, eager_tasks,
                                                                           django_capture_on_commit_callbacks):
    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    client = client_for(world.finance)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("billing:close"), {"organization": world.org_a.pk, "month": MONTH})
    assert response.status_code == 302
    period = BillingPeriod.objects.get()
    row = client.get(reverse("billing:period_progress", args=[period.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in row and 'data-state="closing"' in row
    for callback in callbacks:
        callback()   # the task runs
    row = client.get(reverse("billing:period_progress", args=[period.pk])).content.decode()
    assert 'data-state="closed"' in row and "hx-trigger" not in row and 'value="100"' in row
    assert client_for(world.other_finance).get(reverse("billing:period_progress", args=[period.pk])).status_code \
        == 404


def test_the_invoice_page_shows_the_voucher_share_and_the_amount_due(world, invoiced):
    body = client_for(world.company_user).get(reverse("billing:invoice", args=[invoiced.pk])).content.decode()
    assert invoiced.number in body
    assert 'data-testid="voucher-share">120.00' in body and 'data-testid="amount-due">180.00' in body
    assert 'data-testid="pay-by-transfer"' in body        # Stripe is off
    assert 'data-testid="credit-form"' not in body
    assert client_for(world.researcher).get(reverse("billing:invoice", args=[invoiced.pk])).status_code == 404


def test_with_stripe_on_the_company_gets_a_pay_button(world, invoiced, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    body = client_for(world.company_user).get(reverse("billing:invoice", args=[invoiced.pk])).content.decode()
    assert 'data-testid="pay-online"' in body and "CNY 180.00" in body


def test_the_issuers_finance_sees_the_charges_and_may_credit(world, invoiced):
    client = client_for(world.finance)
    body = client.get(reverse("billing:invoice", args=[invoiced.pk])).content.decode()
    assert 'data-testid="charges"' in body and 'data-testid="credit-form"' in body
    response = client.post(reverse("billing:credit_note", args=[invoiced.pk]), {"reason": "Wrong rate"})
    assert response.status_code == 302
    invoiced.refresh_from_db()
    assert invoiced.state == "credited"


def test_the_pdf_view(world, invoiced):
    response = client_for(world.company_user).get(reverse("billing:invoice_pdf", args=[invoiced.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF") and len(response.content) > 1500


def test_my_bills_show_what_my_use_cost_and_my_companys_invoices_and_vouchers(world, billing, invoiced):
    make_item(billing.instrument, world.researcher, start=at(3, month="2026-11"), minutes=30)   # not charged yet
    body = client_for(world.researcher).get(reverse("billing:mine")).content.decode()
    assert body.count('data-testid="cost-row"') == 2 and "100.00" in body and "≈ 50.00" in body
    body = client_for(world.company_user).get(reverse("billing:mine")).content.decode()
    assert invoiced.number in body and 'data-testid="voucher-balance">380.00' in body


def test_a_pi_sees_their_projects_spend(world, billing):
    account = services.create_account(actor=world.finance, kind="project", organization=world.org_a, number="P-1",
                                      name="Corals", pi=world.manager, budget_cap="100.00")
    services.adjust_charges(actor=world.finance, account_id=account.pk, instrument_id=billing.instrument.pk,
                            amount="90.00", reason="Setup fee")
    body = client_for(world.manager).get(reverse("billing:mine")).content.decode()
    assert 'data-testid="projects"' in body and "90.00" in body and "90%" in body
    statement = client_for(world.manager).get(reverse("billing:account", args=[account.pk]))
    assert statement.status_code == 200
    assert client_for(world.researcher).get(reverse("billing:account", args=[account.pk])).status_code == 404


def test_voucher_pages(world, invoiced):
    voucher = world.company.vouchers.get()
    assert client_for(world.company_user).get(reverse("billing:vouchers")).status_code == 200
    body = client_for(world.finance).get(reverse("billing:voucher", args=[voucher.pk])).content.decode()
    assert invoiced.number in body and "120.00" in body
    assert client_for(world.researcher).get(reverse("billing:vouchers")).status_code == 404
    response = client_for(world.bureau).post(reverse("billing:vouchers"), {
        "company": world.company.pk, "amount": "1000", "share_percent": "40", "valid_from": "2026-01-01",
        "valid_until": "2026-12-31"})
    assert response.status_code == 302


def test_the_export_and_subsidy_pages(world, invoiced):
    client = client_for(world.finance)
    assert client.get(reverse("billing:subsidies"), {"year": 2026}).status_code == 200
    assert client.get(reverse("billing:payments")).status_code == 200
    assert client_for(world.researcher).get(reverse("billing:subsidies")).status_code == 404
