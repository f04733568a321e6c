"""Prometheus metrics: requests and latency per route, queue depth, outbox backlog, task failures.

With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (an empty directory per host) so the
workers' numbers are added up; a Celery worker exposes its own on WORKER_METRICS_PORT.
"""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("instrumentshare_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("instrumentshare_http_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
TASK_FAILURES = Counter("instrumentshare_task_failures_total", "Celery task failures", ["task"])


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name) if match else "unmatched"
        route = route[:100] if route else "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(route).observe(time.perf_counter() - started)
        return response


class LiveCollector:
    """Figures read at scrape time: the Celery queue's length and the unsent outbox."""

    def collect(self):
        queue = GaugeMetricFamily("instrumentshare_celery_queue_depth", "Tasks waiting in the default queue")
        if settings.REDIS_URL:
            try:
                import redis

                queue.add_metric([], redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).llen("celery"))
            except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
                queue.add_metric([], float("nan"))
        else:
            queue.add_metric([], 0)
        yield queue
        from bookings.models import Notification

        outbox = GaugeMetricFamily("instrumentshare_outbox_pending", "Notifications not sent yet")
        outbox.add_metric([], Notification.objects.filter(state=Notification.State.PENDING).count())
        yield outbox
        from bookings.services.notifications import overdue

        late = GaugeMetricFamily("instrumentshare_outbox_overdue",
                                 "Notifications pending longer than OUTBOX_ALERT_MINUTES: alert when above 0")
        late.add_metric([], overdue().count())
        yield late
        dead = GaugeMetricFamily("instrumentshare_outbox_failed",
                                 "Notifications that cannot be sent as they are (no address): send again in the admin")
        dead.add_metric([], Notification.objects.filter(state=Notification.State.FAILED).count())
        yield dead


def _registry() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the default process metrics
            registry.register(collector)
    registry.register(LiveCollector())
    return registry


def metrics_view(request):
    token = getattr(settings, "METRICS_TOKEN", "")
    if token and request.headers.get("Authorization") != f"Bearer {token}":
        return HttpResponseForbidden("metrics need the bearer token")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def count_task_failure(sender=None, **_kwargs) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()
