from celery import shared_task

from . import services


@shared_task(acks_late=True, max_retries=3)
def seal_audit_task() -> int:
    return services.seal_pending()
