from celery import shared_task

from .services import mail

TRANSIENT = (ConnectionError, TimeoutError, OSError)


@shared_task(bind=True, acks_late=True, max_retries=5, autoretry_for=TRANSIENT, retry_backoff=True,
             retry_backoff_max=300)
def mail_request_event(self, event_id: int) -> bool:
    return mail.send(event_id)


@shared_task(acks_late=True)
def sweep_request_mail() -> int:
    return mail.sweep()
