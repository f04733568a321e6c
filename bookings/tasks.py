"""Celery tasks: thin, idempotent wrappers over the services."""

from celery import shared_task

from . import notifications

TRANSIENT = (ConnectionError, TimeoutError, OSError)


@shared_task(bind=True, acks_late=True, max_retries=5, autoretry_for=TRANSIENT, retry_backoff=True,
             retry_backoff_max=300)
def send_notification(self, notification_id: int) -> bool:
    return notifications.send(notification_id)


@shared_task(acks_late=True)
def sweep_outbox() -> int:
    return notifications.sweep_outbox()


@shared_task(acks_late=True)
def send_due_reminders() -> int:
    return notifications.send_all(notifications.queue_due_reminders())


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True)
def reconcile_recent(days: int = 7) -> dict:
    """Reconcile the last ``days`` days. Safe to run twice, or after a worker died half-way."""
    import dataclasses
    import datetime as dt

    from django.utils import timezone

    from .reconcile import reconcile

    now = timezone.now()
    return dataclasses.asdict(reconcile(since=now - dt.timedelta(days=days), now=now))


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True)
def reconcile_window(since: str, until: str, now: str | None = None) -> dict:
    """Reconcile an explicit window (ISO datetimes). Redelivered after a worker dies; safe to repeat."""
    import dataclasses
    import datetime as dt

    from .reconcile import reconcile

    parse = dt.datetime.fromisoformat
    return dataclasses.asdict(reconcile(since=parse(since), until=parse(until), now=parse(now) if now else None))
