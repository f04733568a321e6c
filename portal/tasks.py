from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "worker-heartbeat"


@shared_task
def heartbeat() -> float:
    """A worker ran this: /readyz reads its age to tell whether workers are taking work."""
    now = timezone.now().timestamp()
    cache.set(HEARTBEAT_KEY, now, timeout=3600)
    return now
