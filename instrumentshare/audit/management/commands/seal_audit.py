from django.core.management.base import BaseCommand

from instrumentshare.audit import services


class Command(BaseCommand):
    help = "Append committed audit events to the global seal chain."

    def handle(self, *args, **options):
        count = services.seal_pending()
        self.stdout.write(f"sealed {count} events")
