"""Celery tasks: thin, idempotent wrappers over the services."""

from celery import shared_task

TRANSIENT = (ConnectionError, TimeoutError, OSError)


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True)
def reconcile_recent(days: int = 7) -> dict:
    """Reconcile the last ``days`` days. Safe to run twice, or after a worker died half-way."""
    import dataclasses
    import datetime as dt

    from django.utils import timezone

    from .services.reconcile import reconcile

    now = timezone.now()
    return dataclasses.asdict(reconcile(since=now - dt.timedelta(days=days), now=now))


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True)
def reconcile_window(since: str, until: str, now: str | None = None) -> dict:
    """Reconcile an explicit window (ISO datetimes). Redelivered after a worker dies; safe to repeat."""
    import dataclasses
    import datetime as dt

    from .services.reconcile import reconcile

    parse = dt.datetime.fromisoformat
    return dataclasses.asdict(reconcile(since=parse(since), until=parse(until), now=parse(now) if now else None))
