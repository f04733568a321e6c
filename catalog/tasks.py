"""Celery tasks of the catalog: thin, idempotent wrappers."""

from celery import shared_task

from . import mail

TRANSIENT = (ConnectionError, TimeoutError, OSError)


@shared_task(acks_late=True, max_retries=5, autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=300)
def send_training_mail(training_request_id: int, kind: str) -> bool:
    return mail.send_training_mail(training_request_id, kind)


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=300)
def refresh_opening_windows_task() -> int:
    """Daily: every instrument's opening windows, the horizon moved on a day (``catalog.windows``)."""
    from django.utils import timezone

    from .extensions import windows_refreshed
    from .windows import refresh_opening_windows

    now = timezone.now()
    written = refresh_opening_windows(now=now)
    windows_refreshed.collect(now=now)
    return written
