"""The only module that talks to Stripe. Off unless ``STRIPE_SECRET_KEY`` is set.

Amounts cross this boundary in Stripe's minor units, converted by ``money.to_minor_units`` /
``from_minor_units`` and nowhere else. Every create call carries an idempotency key the caller
stored first, so a retry after a timeout gets the same object, never a second one.
``STRIPE_API_BASE`` points the client elsewhere (a local test server).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import stripe
from django.conf import settings

from instrumentshare.core.errors import DomainError

from .money import from_minor_units, to_minor_units

TIMEOUT_SECONDS = 20


class StripeUnavailable(DomainError):
    status = 503


class BadSignature(DomainError):
    status = 400


@dataclass(frozen=True)
class Intent:
    id: str
    client_secret: str
    status: str
    amount: Decimal
    currency: str


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def publishable_key() -> str:
    return settings.STRIPE_PUBLISHABLE_KEY


def _client() -> stripe.StripeClient:
    if not enabled():
        raise StripeUnavailable("stripe_off", "Online payment is not configured.")
    base = {"api": settings.STRIPE_API_BASE.rstrip("/")} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=2,
                               http_client=stripe.new_default_http_client(timeout=TIMEOUT_SECONDS))


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except stripe.StripeError as error:
        message = getattr(error, "user_message", None) or str(error) or "Stripe refused the request."
        raise StripeUnavailable("stripe_error", message[:300]) from error


def create_customer(*, name: str, email: str, metadata: dict, idempotency_key: str) -> str:
    params = {"name": name, "metadata": metadata}
    if email:
        params["email"] = email
    customer = _call(_client().v1.customers.create, params=params, options={"idempotency_key": idempotency_key})
    return customer.id


def _intent(obj) -> Intent:
    return Intent(id=obj.id, client_secret=obj.client_secret or "", status=obj.status,
                  amount=from_minor_units(obj.amount, obj.currency), currency=obj.currency.upper())


def create_payment_intent(*, amount: Decimal, currency: str, customer: str | None, metadata: dict,
                          idempotency_key: str) -> Intent:
    params = {"amount": to_minor_units(amount, currency), "currency": currency.lower(), "metadata": metadata}
    if customer:
        params["customer"] = customer
    obj = _call(_client().v1.payment_intents.create, params=params, options={"idempotency_key": idempotency_key})
    return _intent(obj)


def retrieve_payment_intent(intent_id: str) -> Intent:
    return _intent(_call(_client().v1.payment_intents.retrieve, intent_id))


def create_refund(*, payment_intent: str, amount: Decimal, currency: str, metadata: dict,
                  idempotency_key: str) -> tuple[str, str]:
    params = {"payment_intent": payment_intent, "amount": to_minor_units(amount, currency), "metadata": metadata}
    refund = _call(_client().v1.refunds.create, params=params, options={"idempotency_key": idempotency_key})
    return refund.id, refund.status


def verified_event(payload: bytes, signature: str) -> dict:
    """The event as a plain dict, only if Stripe's signature over this exact payload checks out."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise StripeUnavailable("stripe_off", "Stripe webhooks are not configured.")
    try:
        stripe.Webhook.construct_event(payload, signature or "", secret)
    except stripe.SignatureVerificationError as error:
        raise BadSignature("bad_signature", "The Stripe-Signature header does not match the payload.") from error
    except ValueError as error:
        raise BadSignature("bad_payload", "The payload is not a Stripe event.") from error
    event = json.loads(payload)
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        raise BadSignature("bad_payload", "The payload is not a Stripe event.")
    return event


def amount_of(obj: dict, field: str = "amount") -> Decimal:
    return from_minor_units(int(obj.get(field) or 0), obj.get("currency") or settings.DEFAULT_CURRENCY)
