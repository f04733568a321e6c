"""Stripe webhooks with hand-signed payloads: signature, once per event id, order, and what they change."""

import threading
import time

import pytest
from django.db import connection
from django.test import Client

from billing.models import Invoice, Payment, Refund, StripeEvent
from billing.services import closing
from instrumentshare.audit.models import AuditEvent
from tests.billing.conftest import MONTH, after_month, at, make_item
from tests.billing.stripe_helpers import WEBHOOK_SECRET, event, intent, post_webhook, sign


@pytest.fixture
def stripe_on(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_not_used_here"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def pending(world, billing, stripe_on):
    """The company's invoice for the month, and a payment waiting for Stripe's word."""
    make_item(billing.instrument, world.company_user, start=at(8), minutes=90)   # 450.00
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = Invoice.objects.get(account=billing.company)
    payment = Payment.objects.create(invoice=invoice, method="stripe", amount=invoice.amount_due, state="pending",
                                     idempotency_key="test-key-1", stripe_payment_intent="pi_test_1",
                                     client_secret="pi_test_1_secret")
    return invoice, payment


def succeeded_payload(payment, **extra) -> bytes:
    return event("payment_intent.succeeded", intent("pi_test_1", 45000, payment_id=payment.pk), **extra)


@pytest.mark.django_db
def test_stripes_word_marks_the_invoice_paid(pending):
    invoice, payment = pending
    response = post_webhook(Client(), succeeded_payload(payment))
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "invoice paid"
    invoice.refresh_from_db()
    payment.refresh_from_db()
    assert payment.state == "succeeded" and invoice.state == "paid" and invoice.amount_paid == invoice.amount_due


@pytest.mark.django_db
def test_a_bad_signature_is_400_and_changes_nothing(pending):
    invoice, payment = pending
    payload = succeeded_payload(payment)
    for signature in (sign(payload, secret="whsec_wrong"), "", "t=1,v1=deadbeef", sign(payload + b" ")):
        response = post_webhook(Client(), payload, signature)
        assert response.status_code == 400, signature
        assert response.json()["code"] in {"bad_signature", "bad_payload"}
    old = sign(payload, timestamp=int(time.time()) - 3600)   # a replay from an hour ago
    assert post_webhook(Client(), payload, old).status_code == 400
    assert StripeEvent.objects.count() == 0
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.state == "pending" and invoice.state == "issued"


@pytest.mark.django_db
def test_the_same_event_five_times_records_one_payment(pending):
    invoice, payment = pending
    payload = succeeded_payload(payment, event_id="evt_same_one")
    outcomes = [post_webhook(Client(), payload).json()["outcome"] for _ in range(5)]
    assert outcomes == ["invoice paid"] + ["duplicate"] * 4
    assert StripeEvent.objects.count() == 1
    assert AuditEvent.objects.filter(action="billing.payment.succeeded").count() == 1
    invoice.refresh_from_db()
    assert invoice.amount_paid == invoice.amount_due


@pytest.mark.django_db
def test_a_second_success_event_for_the_same_intent_changes_nothing(pending):
    invoice, payment = pending
    post_webhook(Client(), succeeded_payload(payment))
    response = post_webhook(Client(), succeeded_payload(payment))
    assert response.json()["outcome"] == "already succeeded"
    invoice.refresh_from_db()
    assert invoice.amount_paid == invoice.amount_due


@pytest.mark.django_db
def test_a_late_failure_after_success_is_ignored_and_a_success_after_failure_counts(pending):
    invoice, payment = pending
    failed = event("payment_intent.payment_failed", intent("pi_test_1", 45000, status="requires_payment_method"),
                   created=int(time.time()) - 60)
    assert post_webhook(Client(), failed).json()["outcome"] == "payment failed"
    assert post_webhook(Client(), succeeded_payload(payment)).json()["outcome"] == "invoice paid"
    late_processing = event("payment_intent.processing", intent("pi_test_1", 45000, status="processing"))
    assert post_webhook(Client(), late_processing).json()["outcome"].startswith("ignored")
    payment.refresh_from_db()
    assert payment.state == "succeeded"


@pytest.mark.django_db
def test_an_event_that_arrives_before_the_intent_id_was_stored_finds_its_payment(pending):
    invoice, payment = pending
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent=None, state="creating")
    assert post_webhook(Client(), succeeded_payload(payment)).json()["outcome"] == "invoice paid"
    payment.refresh_from_db()
    assert payment.stripe_payment_intent == "pi_test_1"


@pytest.mark.django_db
def test_unknown_intents_and_other_event_types_are_acknowledged_and_recorded(pending):
    unknown = event("payment_intent.succeeded", intent("pi_someone_else", 100))
    assert post_webhook(Client(), unknown).json()["outcome"] == "unknown payment intent"
    other = event("customer.created", {"id": "cus_1", "object": "customer"})
    assert post_webhook(Client(), other).json()["outcome"] == "ignored"
    assert StripeEvent.objects.count() == 2


@pytest.mark.django_db
def test_a_refund_event_settles_the_refund(pending, world):
    invoice, payment = pending
    post_webhook(Client(), succeeded_payload(payment))
    Refund.objects.create(payment=payment, credit_note=invoice, amount=payment.amount, state="pending",
                          idempotency_key="refund-key", stripe_refund="re_test_1")
    refunded = event("charge.refunded", {"id": "ch_1", "object": "charge", "refunds": {"data": [
        {"id": "re_test_1", "object": "refund", "status": "succeeded"}]}})
    assert post_webhook(Client(), refunded).json()["outcome"] == "1 refund(s) updated"
    assert Refund.objects.get().state == "succeeded"


@pytest.mark.django_db
def test_without_stripe_keys_the_webhook_is_not_there(pending, settings):
    invoice, payment = pending
    settings.STRIPE_WEBHOOK_SECRET = ""
    assert post_webhook(Client(), succeeded_payload(payment)).status_code == 503   # half configured
    settings.STRIPE_SECRET_KEY = ""
    assert post_webhook(Client(), succeeded_payload(payment)).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_five_times_at_once_records_one_payment(pending):
    invoice, payment = pending
    payload = succeeded_payload(payment, event_id="evt_concurrent")
    barrier = threading.Barrier(5)
    results, errors = [], []

    def deliver():
        try:
            barrier.wait(timeout=10)
            response = post_webhook(Client(), payload)
            results.append((response.status_code, response.json().get("outcome")))
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(results) == sorted([(200, "invoice paid")] + [(200, "duplicate")] * 4)
    assert StripeEvent.objects.filter(event_id="evt_concurrent").count() == 1
    assert AuditEvent.objects.filter(action="billing.payment.succeeded").count() == 1
    invoice.refresh_from_db()
    assert invoice.state == "paid" and invoice.amount_paid == invoice.amount_due
