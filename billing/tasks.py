"""Celery tasks: thin, idempotent wrappers over the billing services. They take ids."""

import logging

from celery import shared_task

from .services import closing, payments
from .stripe_gateway import StripeUnavailable

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def close_period_task(period_id: int) -> str:
    """Close one provider's month. A failure is kept on the period (finance sees it and can retry)."""
    try:
        return closing.run_close(period_id).state
    except Exception:  # noqa: BLE001 - run_close logged it and marked the period failed
        return "failed"


@shared_task(acks_late=True)
def send_refund(refund_id: int) -> str:
    """Left in 'creating' when Stripe cannot be reached; the periodic sweep sends it again with the
    same idempotency key, so Stripe refunds once."""
    try:
        return payments.send_refund(refund_id)
    except StripeUnavailable as error:
        logger.warning("refund %s not sent yet: %s", refund_id, error.detail)
        return "retry later"


@shared_task(acks_late=True)
def sync_stripe() -> int:
    """Periodic (every 15 minutes): ask Stripe about payments whose webhook has not come, and send
    refunds that could not be sent."""
    return payments.sync_pending_payments() + payments.resend_refunds()
