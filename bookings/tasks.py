"""Celery tasks: thin, idempotent wrappers over the services."""

import datetime as dt

from celery import shared_task
from django.conf import settings

from .services import notifications, replies, waitlist

TRANSIENT = (ConnectionError, TimeoutError, OSError)


# A few quick retries for a brief hiccup; a longer outage is the outbox sweep's (the row stays pending).
@shared_task(bind=True, acks_late=True, max_retries=settings.OUTBOX_TASK_RETRIES, autoretry_for=TRANSIENT,
             retry_backoff=True, retry_backoff_max=300)
def send_notification(self, notification_id: int) -> bool:
    """One outbox row: a lab manager's "Send again" (``notifications.send_one_soon``), tasks queued before
    the wake-up (``send_outbox``) replaced a task per message, and the benchmark of that path."""
    return notifications.send(notification_id)


@shared_task(acks_late=True)
def send_outbox() -> int:
    """Queued after a commit that wrote outbox rows (``notifications.wake_outbox``): send what is due."""
    return notifications.send_woken()


@shared_task(acks_late=True)
def sweep_outbox(older_than_seconds: int = 60) -> int:
    """Periodic (the beat, every minute): rows pending longer than ``older_than_seconds`` (younger
    ones are still their wake-up's, ``send_outbox``)."""
    return notifications.sweep_outbox(older_than=dt.timedelta(seconds=older_than_seconds))


@shared_task(acks_late=True)
def send_due_reminders() -> int:
    return notifications.send_all(notifications.queue_due_reminders())


@shared_task(acks_late=True, autoretry_for=TRANSIENT, max_retries=3, retry_backoff=True)
def read_replies() -> int:
    """The calendar replies in the organizer's mailbox (nothing to do unless IMIP_IMAP_URL is set)."""
    return sum(outcome.action == "cancelled" for outcome in replies.read_mailbox())


@shared_task(acks_late=True)
def offer_freed_time(instrument_id: int) -> int:
    """Time freed on an instrument: offer it to its waiting list, first in line first."""
    return len(waitlist.offer_freed_time(instrument_id=instrument_id))


@shared_task(acks_late=True)
def process_waitlists() -> dict:
    """Lapse unanswered offers (the next in line is offered), end passed entries, offer free time."""
    return waitlist.process_waitlists()


@shared_task(acks_late=True)
def keep_stored_days_task() -> dict:
    """Hourly: availability's stored days dropped once past and computed ahead (``availability.keep_stored_days``)."""
    from .availability import keep_stored_days

    return keep_stored_days()
