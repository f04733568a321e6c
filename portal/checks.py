"""Deployment checks of the portal (``manage.py check --deploy``)."""

from urllib.parse import urlsplit

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
                         id="portal.E003")]


PLACEHOLDER_DOMAINS = ("localhost", ".local", ".invalid", ".example", ".test")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::1")  # noqa: S104 - names to refuse, not to bind


@checks.register(checks.Tags.security, deploy=True)
def mail_and_links(app_configs=None, **kwargs):
    """A deployment names its own sender and address: mail from ``noreply@instrumentshare.local`` fails
    SPF/DMARC, and links to ``127.0.0.1:8000`` in e-mails and calendar feeds lead nowhere."""
    errors = []
    sender = settings.DEFAULT_FROM_EMAIL.split("<")[-1].rstrip(">").strip()
    domain = sender.rpartition("@")[2].casefold()
    if not domain or domain == "localhost" or domain.endswith(PLACEHOLDER_DOMAINS):
        errors.append(checks.Error(
            f"DEFAULT_FROM_EMAIL is {settings.DEFAULT_FROM_EMAIL!r}: receiving servers reject or bin mail from a "
            "domain that is not yours (SPF, DMARC), and Message-IDs carry this domain.",
            hint="Set DEFAULT_FROM_EMAIL to an address of your own domain, e.g. "
                 "'InstrumentShare <noreply@instruments.example.cn>'.", id="portal.E001"))
    site = urlsplit(settings.SITE_URL)
    if site.scheme != "https" or (site.hostname or "") in LOCAL_HOSTS or not site.hostname:
        errors.append(checks.Error(
            f"SITE_URL is {settings.SITE_URL!r}: the links in e-mails, invitations and calendar feeds use it.",
            hint="Set SITE_URL to the public https address, e.g. https://instruments.example.cn.", id="portal.E002"))
    return errors
