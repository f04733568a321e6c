"""The Celery application. Tasks live in each app's ``tasks.py`` and stay thin."""

import os

from celery import Celery
from celery.signals import task_failure, task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "instrumentshare.settings")

app = Celery("instrumentshare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_request_id(task_id=None, task=None, **_kwargs):
    # Audit rows written by a task carry the task id, so a change can be traced to its run.
    from instrumentshare.core.context import set_request_id

    set_request_id(f"task-{task_id}")


@task_failure.connect
def _count_failure(sender=None, **kwargs):
    from portal.metrics import count_task_failure

    count_task_failure(sender=sender)


@worker_ready.connect
def _serve_worker_metrics(**_kwargs):
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port))
