"""An invoice paid end to end against a local Stripe (localstripe): our server creates the
PaymentIntent, the test plays Stripe.js (card, confirm), and localstripe's real signed webhook
reaches the live server and marks the invoice paid. A credit note then refunds through it."""

import time

import pytest
import requests

from billing import stripe_gateway
from billing.models import Invoice, Payment, Refund, StripeEvent
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item
from tests.billing.stripe_helpers import WEBHOOK_PATH, LocalStripe

SECRET_KEY = "sk_test_localstripe"
WEBHOOK_SECRET = "whsec_localstripe"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def localstripe(tmp_path, live_server, settings):
    server = LocalStripe(tmp_path / "localstripe.log")
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_localstripe"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = server.base
    webhook_url = live_server.url.replace("localhost", "127.0.0.1") + WEBHOOK_PATH
    response = requests.post(f"{server.base}/_config/webhooks/instrumentshare",
                             data={"url": webhook_url, "secret": WEBHOOK_SECRET}, timeout=10)
    response.raise_for_status()
    yield server
    server.stop()


def stripe_js_pays(server, intent_id: str, card: str = "4242424242424242") -> dict:
    """What Stripe's Payment Element does in the browser: a card payment method, then confirm."""
    auth = (SECRET_KEY, "")
    method = requests.post(f"{server.base}/v1/payment_methods", auth=auth, timeout=10, data={
        "type": "card", "card[number]": card, "card[exp_month]": "12", "card[exp_year]": "2030",
        "card[cvc]": "123"}).json()
    requests.post(f"{server.base}/v1/payment_intents/{intent_id}", auth=auth, timeout=10,
                  data={"payment_method": method["id"]}).raise_for_status()
    return requests.post(f"{server.base}/v1/payment_intents/{intent_id}/confirm", auth=auth, timeout=10).json()


def wait_for(predicate, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_company_pays_its_invoice_online_and_the_webhook_marks_it_paid(world, billing, localstripe, api_as,
                                                                         eager_tasks):
    make_item(billing.instrument, world.company_user, start=at(8), minutes=90)   # 450.00
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = Invoice.objects.get(account=billing.company)

    response = api_as(world.company_user).post(f"/billing/invoices/{invoice.pk}/online-payment")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["client_secret"].startswith(body["stripe_payment_intent"])
    assert body["publishable_key"] == "pk_test_localstripe"
    payment = Payment.objects.get(pk=body["id"])
    assert payment.idempotency_key and payment.state == "pending"
    assert stripe_gateway.retrieve_payment_intent(payment.stripe_payment_intent).amount == invoice.amount_due

    # Asking again before paying gives the same intent, not a second one.
    again = api_as(world.company_user).post(f"/billing/invoices/{invoice.pk}/online-payment").json()
    assert again["stripe_payment_intent"] == body["stripe_payment_intent"]

    # Confirming in the browser does not pay the invoice: Stripe's webhook does.
    invoice.refresh_from_db()
    assert invoice.state == "issued"
    assert stripe_js_pays(localstripe, payment.stripe_payment_intent)["status"] == "succeeded"
    assert wait_for(lambda: Invoice.objects.get(pk=invoice.pk).state == "paid"), open(localstripe.log.name).read()
    payment.refresh_from_db()
    assert payment.state == "succeeded" and payment.amount == invoice.amount_due
    assert StripeEvent.objects.filter(type="payment_intent.succeeded").count() == 1

    # A credit note refunds the money through Stripe.
    note = closing.issue_credit_note(actor=world.finance, invoice_id=invoice.pk, reason="Billed twice by mistake")
    refund = Refund.objects.get(credit_note=note)
    assert refund.state == "succeeded" and refund.stripe_refund.startswith("re_")
    assert refund.amount == invoice.amount_due


def test_a_declined_card_leaves_the_invoice_unpaid(world, billing, localstripe, api_as):
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = Invoice.objects.get(account=billing.company)
    body = api_as(world.company_user).post(f"/billing/invoices/{invoice.pk}/online-payment").json()
    stripe_js_pays(localstripe, body["stripe_payment_intent"], card="4000000000000341")
    assert wait_for(lambda: Payment.objects.get(pk=body["id"]).state == "failed")
    invoice.refresh_from_db()
    assert invoice.state == "issued"


def test_only_the_paying_company_may_start_a_payment(world, billing, localstripe, api_as):
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = Invoice.objects.get(account=billing.company)
    assert api_as(world.researcher).post(f"/billing/invoices/{invoice.pk}/online-payment").status_code == 404
    assert api_as(world.finance).post(f"/billing/invoices/{invoice.pk}/online-payment").status_code == 403
