"""Celery tasks: thin, idempotent wrappers over the services (beat entries in the README / settings)."""

import dataclasses

from celery import shared_task

TRANSIENT = (ConnectionError, TimeoutError, OSError)


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True)
def refresh_statistics_task(year: int | None = None) -> list[dict]:
    """Recompute the summary tables of ``year`` (default: the current year, and the previous one in
    January and February). Replaces rows, so running it twice, or after a worker died, is harmless."""
    from . import services

    years = [year] if year else services.years_to_refresh()
    return [dataclasses.asdict(services.refresh_statistics(year=each)) for each in years]


@shared_task(acks_late=True, max_retries=3, autoretry_for=TRANSIENT, retry_backoff=True)
def export_national_task() -> list[str]:
    """Export the last quarter to the national platform once it is due, and resend what failed.
    One export per organization and quarter: a second run finds them and sends nothing new."""
    from . import services

    return [f"{export.organization_id}:{export.period}" for export in services.export_due()]
