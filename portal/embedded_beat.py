"""Periodic jobs for the embedded mode (no Redis, no beat process).

It reads the same ``CELERY_BEAT_SCHEDULE`` that the real beat uses and runs each due task
in-process with ``Task.apply``, so the demo shows the whole loop (reminders, reconciliation,
audit sealing) without any other service.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from celery import current_app as app  # the project's app (set as the default when Django starts)
from celery.schedules import schedule as celery_schedule
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)


def _as_schedule(value):
    if isinstance(value, timedelta):
        return celery_schedule(run_every=value, app=app)
    if isinstance(value, int | float):
        return celery_schedule(run_every=timedelta(seconds=value), app=app)
    value.app = app
    return value


class EmbeddedBeat(threading.Thread):
    def __init__(self, *, tick_seconds: float = 5.0):
        super().__init__(name="embedded-beat", daemon=True)
        self.tick_seconds = tick_seconds
        self.stopped = threading.Event()
        app.loader.import_default_modules()
        self.entries = {
            name: {"task": entry["task"], "schedule": _as_schedule(entry["schedule"]),
                   "args": entry.get("args", ()), "kwargs": entry.get("kwargs", {}), "last_run_at": None}
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        }

    def run_due(self) -> list[str]:
        ran = []
        for name, entry in self.entries.items():
            last = entry["last_run_at"]
            due = last is None or entry["schedule"].is_due(last).is_due
            if not due:
                continue
            entry["last_run_at"] = timezone.now()
            try:
                app.tasks[entry["task"]].apply(args=entry["args"], kwargs=entry["kwargs"], throw=True)
                ran.append(name)
            except Exception:  # a failing job must not stop the others
                logger.exception("periodic job %s failed", name)
            finally:
                close_old_connections()
        return ran

    def run(self) -> None:
        while not self.stopped.is_set():
            self.run_due()
            self.stopped.wait(self.tick_seconds)

    def stop(self) -> None:
        self.stopped.set()
