"""Deployment checks of the portal (``manage.py check --deploy``)."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def metrics_need_a_token(app_configs=None, **kwargs):
    """/metrics names instruments, queues and error counts: without DEBUG it must ask for the scraper's
    bearer token (METRICS_TOKEN); deploy/nginx and the ingress also keep it off the public address."""
    if settings.DEBUG or getattr(settings, "METRICS_TOKEN", ""):
        return []
    return [checks.Error("METRICS_TOKEN is not set: /metrics would be public.",
                         hint="Set METRICS_TOKEN to a long random string and give it to the Prometheus scraper.",
                         id="portal.E001")]
