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
        beat = None
        if settings.CELERY_TASK_ALWAYS_EAGER:
            beat = EmbeddedBeat()
            beat.start()
            self.stdout.write(f"periodic jobs run in-process: {', '.join(beat.entries)}")
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nInstrumentShare is starting at {url}\n"))
        print_logins(self.stdout)
        mail_to = getattr(settings, "EMAIL_FILE_PATH", None)
        self.stdout.write(f"E-mail goes to {'files under ' + str(mail_to) if mail_to else 'SMTP'}\n")
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False)
        finally:
            if beat:
                beat.stop()
