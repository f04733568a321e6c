"""A company user opens their invoice and sees the voucher share and the amount due; paying online
starts from our page (the browser stops before Stripe's own script, which tests never fetch)."""

import datetime as dt

import pytest

from billing import services
from billing.models import Invoice
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_card, make_item
from tests.billing.stripe_helpers import LocalStripe
from tests.bookings.conftest import make_instrument
from tests.browser.conftest import follow_nav

pytestmark = pytest.mark.browser


@pytest.fixture
def company_invoice(world):
    instrument = make_instrument(world)
    make_card(instrument)
    account = services.create_account(actor=None, kind="external", organization=world.company, number="EXT-C",
                                      name="Company C", billing_name="丙公司", contact_email="pay@c.example")
    services.issue_voucher(actor=world.bureau, company=world.company, amount="1000", share_percent="40",
                           valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    make_item(instrument, world.company_user, start=at(8), minutes=90)     # 450.00 at the industry rate
    closing.close_period(actor=None, month=MONTH, now=after_month())
    return Invoice.objects.get(account=account)


def test_a_company_user_sees_the_voucher_share_and_the_amount_due(world, company_invoice, page, login):
    login("company_user")
    follow_nav(page, "billing:mine")
    page.click(f"text={company_invoice.number}")
    assert page.locator("[data-testid=invoice-number]").inner_text() == company_invoice.number
    assert page.locator("[data-testid=subtotal]").inner_text() == "450.00"
    assert page.locator("[data-testid=voucher-share]").inner_text() == "180.00"
    assert page.locator("[data-testid=amount-due]").inner_text() == "270.00"
    assert page.locator("[data-testid=pay-by-transfer]").is_visible()   # Stripe is off here


def test_paying_online_starts_at_our_page_with_a_payment_intent(world, company_invoice, page, login, settings,
                                                                tmp_path):
    server = LocalStripe(tmp_path / "localstripe.log")
    try:
        settings.STRIPE_SECRET_KEY = "sk_test_browser"
        settings.STRIPE_PUBLISHABLE_KEY = "pk_test_browser"
        settings.STRIPE_API_BASE = server.base
        page.route("https://js.stripe.com/**", lambda route: route.abort())
        login("company_user")
        page.goto(f"/billing/invoices/{company_invoice.pk}/")
        with page.expect_navigation():
            page.click("[data-testid=pay-online]")
        form = page.locator("[data-testid=payment-form]")
        assert form.get_attribute("data-client-secret").startswith(form.get_attribute("data-payment-intent"))
        assert form.get_attribute("data-publishable-key") == "pk_test_browser"
        assert "270.00" in page.locator("[data-testid=pay-amount]").inner_text()
        company_invoice.refresh_from_db()
        assert company_invoice.state == "issued"   # only Stripe's webhook marks it paid
    finally:
        server.stop()
