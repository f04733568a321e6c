"""Paying invoices online with Stripe, and Stripe's word on it (webhooks).

The order of things (pretix's, roughly): store a ``Payment`` with its idempotency key and commit;
call Stripe outside any transaction; store the intent. Only a verified Stripe event (or Stripe's
answer to our own query) marks a payment succeeded, and only then is the invoice paid. Each event
id is recorded once: a redelivery, or the same event delivered five times at once, finds the
row and does nothing. Payment states only move forward, so an old "failed" or "processing" event
arriving after "succeeded" changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Forbidden, NotFound

from .. import queries
from .. import stripe_gateway as gateway
from ..models import BillingAccount, Invoice, Payment, Refund, StripeEvent
from .closing import settle

logger = logging.getLogger(__name__)
OPEN_STATES = (Payment.State.CREATING, Payment.State.PENDING, Payment.State.PROCESSING)


# --- starting a payment -------------------------------------------------------------------------


def start_online_payment(*, user, invoice_id: int, now: dt.datetime | None = None) -> Payment:
    """A PaymentIntent for what is still due; the page confirms it with Stripe's Payment Element."""
    now = now or timezone.now()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("account", "account__organization") \
            .filter(pk=invoice_id).first()
        if invoice is None or not queries.visible_invoices(user).filter(pk=invoice_id).exists():
            raise NotFound("not_found", "No such invoice.")
        if not queries.can_pay(user, invoice):
            raise Forbidden("forbidden", "Online payment is for the paying company.")
        if not gateway.enabled():
            raise Conflict("stripe_off", "Online payment is not available; pay by bank transfer.")
        due = invoice.outstanding
        if due <= 0:
            raise Conflict("nothing_due", "Nothing is due on this invoice.")
        payment = invoice.payments.filter(method=Payment.Method.STRIPE, state__in=OPEN_STATES[:2], amount=due) \
            .order_by("-id").first()
        if payment is not None and payment.stripe_payment_intent and payment.client_secret:
            return payment
        if payment is None:
            # The key is stored before Stripe hears of it: a retry asks for the same intent.
            payment = Payment.objects.create(invoice=invoice, method=Payment.Method.STRIPE, amount=due,
                                             currency=invoice.currency, created_by=user, created_at=now,
                                             idempotency_key=f"invoice-{invoice.pk}-payment-{uuid.uuid4().hex}")
            record(actor=user, action="billing.payment.started", target=payment,
                   after={"invoice": invoice.number, "amount": due, "idempotency_key": payment.idempotency_key})
    customer = _ensure_customer(invoice.account)
    intent = gateway.create_payment_intent(
        amount=payment.amount, currency=payment.currency, customer=customer, idempotency_key=payment.idempotency_key,
        metadata={"invoice_id": str(invoice.pk), "invoice_number": invoice.number, "payment_id": str(payment.pk)})
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if not payment.stripe_payment_intent:
            payment.stripe_payment_intent = intent.id
        payment.client_secret = intent.client_secret
        if payment.state == Payment.State.CREATING:
            payment.state = Payment.State.PENDING
        payment.save(update_fields=["stripe_payment_intent", "client_secret", "state"])
    return payment


def _ensure_customer(account: BillingAccount) -> str:
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer = gateway.create_customer(name=account.payer_name, email=account.contact_email,
                                       metadata={"account_id": str(account.pk), "account_number": account.number},
                                       idempotency_key=f"customer-account-{account.pk}")
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id="").update(stripe_customer_id=customer)
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


# --- webhooks -----------------------------------------------------------------------------------


def handle_webhook(*, payload: bytes, signature: str, now: dt.datetime | None = None) -> str:
    """Verify, record once, act. Returns what happened (for the log and the response)."""
    event = gateway.verified_event(payload, signature)
    now = now or timezone.now()
    obj = (event.get("data") or {}).get("object") or {}
    created = dt.datetime.fromtimestamp(int(event.get("created") or now.timestamp()), tz=dt.UTC)
    with transaction.atomic():
        try:
            with transaction.atomic():
                StripeEvent.objects.create(event_id=str(event["id"])[:100], type=str(event["type"])[:100],
                                           created=created, object_id=str(obj.get("id", ""))[:100], payload=event,
                                           received_at=now)
        except IntegrityError:
            return "duplicate"
        handler = HANDLERS.get(event["type"])
        outcome = handler(obj, created, now) if handler else "ignored"
        StripeEvent.objects.filter(event_id=str(event["id"])[:100]).update(outcome=outcome[:200])
    logger.info("stripe event %s %s: %s", event["id"], event["type"], outcome)
    return outcome


def _payment_for(obj: dict) -> Payment | None:
    """The (locked) payment an intent belongs to: by intent id, else by our own id in its metadata
    (the event can arrive before we stored the intent id)."""
    intent_id = str(obj.get("id") or "")
    payment = Payment.objects.select_for_update().filter(stripe_payment_intent=intent_id).first()
    if payment is not None:
        return payment
    payment_id = str((obj.get("metadata") or {}).get("payment_id") or "")
    if not payment_id.isdigit():
        return None
    payment = Payment.objects.select_for_update().filter(pk=int(payment_id), method=Payment.Method.STRIPE).first()
    if payment is None or (payment.stripe_payment_intent and payment.stripe_payment_intent != intent_id):
        return None
    payment.stripe_payment_intent = intent_id
    payment.save(update_fields=["stripe_payment_intent"])
    return payment


def on_intent_succeeded(obj: dict, created: dt.datetime, now: dt.datetime) -> str:
    payment = _payment_for(obj)
    if payment is None:
        return "unknown payment intent"
    if payment.state == Payment.State.SUCCEEDED:
        return "already succeeded"
    received = gateway.amount_of(obj, "amount_received") if obj.get("amount_received") else gateway.amount_of(obj)
    before = {"state": payment.state, "amount": payment.amount}
    payment.state, payment.amount, payment.succeeded_at, payment.last_event_at = (
        Payment.State.SUCCEEDED, received, now, created)
    payment.failure_message = ""
    payment.save(update_fields=["state", "amount", "succeeded_at", "last_event_at", "failure_message"])
    invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
    paid = settle(invoice, now)
    record(actor=None, action="billing.payment.succeeded", target=payment, before=before,
           after={"state": payment.state, "amount": received, "invoice": invoice.number,
                  "invoice_state": invoice.state})
    return "invoice paid" if paid else "payment succeeded"


def _move(obj: dict, created: dt.datetime, state: str, allowed: tuple, message: str = "") -> str:
    payment = _payment_for(obj)
    if payment is None:
        return "unknown payment intent"
    if payment.state not in allowed:
        return f"ignored: payment already {payment.state}"
    before = {"state": payment.state}
    payment.state, payment.last_event_at = state, created
    payment.failure_message = message[:300]
    payment.save(update_fields=["state", "last_event_at", "failure_message"])
    record(actor=None, action=f"billing.payment.{state}", target=payment, before=before, after={"state": state})
    return f"payment {state}"


def on_intent_failed(obj: dict, created: dt.datetime, now: dt.datetime) -> str:
    message = ((obj.get("last_payment_error") or {}).get("message") or "")
    return _move(obj, created, Payment.State.FAILED, OPEN_STATES, message)


def on_intent_processing(obj: dict, created: dt.datetime, now: dt.datetime) -> str:
    return _move(obj, created, Payment.State.PROCESSING, OPEN_STATES[:2])


def on_intent_canceled(obj: dict, created: dt.datetime, now: dt.datetime) -> str:
    return _move(obj, created, Payment.State.CANCELED, (*OPEN_STATES, Payment.State.FAILED))


def on_refund(obj: dict, created: dt.datetime, now: dt.datetime) -> str:
    refunds = [obj] if obj.get("object") == "refund" else ((obj.get("refunds") or {}).get("data") or [])
    moved = 0
    for data in refunds:
        state = {"succeeded": Refund.State.SUCCEEDED, "failed": Refund.State.FAILED,
                 "canceled": Refund.State.FAILED}.get(data.get("status"), Refund.State.PENDING)
        refund = Refund.objects.select_for_update().filter(stripe_refund=str(data.get("id") or "")).first()
        if refund is None or refund.state in (Refund.State.SUCCEEDED, Refund.State.FAILED) or refund.state == state:
            continue
        refund.state = state
        refund.succeeded_at = now if state == Refund.State.SUCCEEDED else None
        refund.save(update_fields=["state", "succeeded_at"])
        record(actor=None, action="billing.refund.updated", target=refund, after={"state": state})
        moved += 1
    return f"{moved} refund(s) updated"


HANDLERS = {
    "payment_intent.succeeded": on_intent_succeeded,
    "payment_intent.payment_failed": on_intent_failed,
    "payment_intent.processing": on_intent_processing,
    "payment_intent.canceled": on_intent_canceled,
    "charge.refunded": on_refund,
    "refund.created": on_refund,
    "refund.updated": on_refund,
    "charge.refund.updated": on_refund,
}


# --- asking Stripe ourselves --------------------------------------------------------------------


def sync_payment(payment_id: int, *, now: dt.datetime | None = None) -> str:
    """Ask Stripe about an intent whose webhook never came; act on its answer as on an event."""
    now = now or timezone.now()
    payment = Payment.objects.filter(pk=payment_id, method=Payment.Method.STRIPE, state__in=OPEN_STATES).first()
    if payment is None or not payment.stripe_payment_intent:
        return "nothing to do"
    intent = gateway.retrieve_payment_intent(payment.stripe_payment_intent)
    obj = {"id": intent.id, "amount": gateway.to_minor_units(intent.amount, intent.currency),
           "currency": intent.currency.lower(), "metadata": {"payment_id": str(payment.pk)}}
    handler = {"succeeded": on_intent_succeeded, "processing": on_intent_processing,
               "canceled": on_intent_canceled}.get(intent.status)
    if handler is None:
        return f"still {intent.status}"
    with transaction.atomic():
        return handler(obj, now, now)


def sync_pending_payments(*, older_than_minutes: int = 15, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=older_than_minutes)
    ids = list(Payment.objects.filter(method=Payment.Method.STRIPE, state__in=OPEN_STATES[1:],
                                      stripe_payment_intent__isnull=False, created_at__lt=cutoff,
                                      created_at__gt=now - dt.timedelta(days=3)).values_list("pk", flat=True)[:200])
    if not gateway.enabled():
        return 0
    done = 0
    for payment_id in ids:
        try:
            if sync_payment(payment_id, now=now).startswith(("invoice", "payment")):
                done += 1
        except gateway.StripeUnavailable:
            logger.warning("could not ask Stripe about payment %s", payment_id)
    return done


# --- refunds ------------------------------------------------------------------------------------


def send_refund(refund_id: int, *, now: dt.datetime | None = None) -> str:
    """Ask Stripe to refund; the stored idempotency key makes a retried task ask for the same refund."""
    now = now or timezone.now()
    refund = Refund.objects.select_related("payment", "credit_note").filter(pk=refund_id).first()
    if refund is None or refund.state != Refund.State.CREATING:
        return "nothing to do"
    stripe_id, status = gateway.create_refund(
        payment_intent=refund.payment.stripe_payment_intent, amount=refund.amount, currency=refund.currency,
        metadata={"refund_id": str(refund.pk), "credit_note": refund.credit_note.number},
        idempotency_key=refund.idempotency_key)
    state = Refund.State.SUCCEEDED if status == "succeeded" else (
        Refund.State.FAILED if status in ("failed", "canceled") else Refund.State.PENDING)
    with transaction.atomic():
        moved = Refund.objects.filter(pk=refund.pk, state=Refund.State.CREATING).update(
            stripe_refund=stripe_id, state=state, succeeded_at=now if state == Refund.State.SUCCEEDED else None)
        if moved:
            record(actor=None, action="billing.refund.sent", target=refund,
                   after={"stripe_refund": stripe_id, "state": state, "amount": refund.amount})
    return state


def resend_refunds(*, older_than_minutes: int = 5, now: dt.datetime | None = None) -> int:
    if not gateway.enabled():
        return 0
    now = now or timezone.now()
    ids = list(Refund.objects.filter(state=Refund.State.CREATING,
                                     created_at__lt=now - dt.timedelta(minutes=older_than_minutes))
               .values_list("pk", flat=True)[:100])
    sent = 0
    for refund_id in ids:
        try:
            send_refund(refund_id, now=now)
            sent += 1
        except gateway.StripeUnavailable:
            logger.warning("refund %s not sent yet", refund_id)
    return sent
