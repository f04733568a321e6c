"""The Celery application. Tasks live in each app's ``tasks.py`` and stay thin."""

import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "instrumentshare.settings")

app = Celery("instrumentshare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_request_id(task_id=None, task=None, **_kwargs):
    # Audit rows written by a task carry the task id, so a change can be traced to its run.
    from instrumentshare.core.context import set_request_id

    set_request_id(f"task-{task_id}")
