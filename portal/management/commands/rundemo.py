import io
import logging
import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from portal.demo import print_logins
from portal.embedded_beat import EmbeddedBeat


class Command(BaseCommand):
    help = "Serve the embedded demo: the web app plus periodic jobs run in-process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host, port, **options):
        url = f"http://{host}:{port}/"
        if "SITE_URL" not in os.environ:
            settings.SITE_URL = url.rstrip("/")  # links in e-mails and feeds lead to the port served here
        beat = EmbeddedBeat() if settings.CELERY_TASK_ALWAYS_EAGER else None
        if "LOG_LEVEL" not in os.environ:
            # The periodic jobs' INFO lines would bury the logins; warnings and errors still show. Celery's
            # Django fixup sets Django (and its logging) up again when a task runs: the setting changes too.
            settings.LOGGING["root"]["level"] = "WARNING"
            logging.getLogger().setLevel(logging.WARNING)
        if beat:
            beat.start()
        mail_to = getattr(settings, "EMAIL_FILE_PATH", None)
        self.stdout.write(f"Periodic jobs run in-process. E-mail goes to "
                          f"{'files under ' + str(mail_to) if mail_to else 'SMTP'}. Stop with Ctrl-C.\n")
        self.stdout.write(self.style.SUCCESS(f"\nInstrumentShare: {url}\n"))
        print_logins(self.stdout)
        try:
            # runserver's own banner would print after the logins: its output is dropped, requests still log.
            call_command("runserver", f"{host}:{port}", use_reloader=False, stdout=io.StringIO())
        finally:
            if beat:
                beat.stop()
