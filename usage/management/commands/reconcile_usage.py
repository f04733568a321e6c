import dataclasses
import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from usage.services.reconcile import reconcile


class Command(BaseCommand):
    help = "Reconcile usage sessions with bookings and write billable items (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO date or datetime (UTC if no offset); default: 7 days ago")
        parser.add_argument("--until", help="ISO date or datetime; default: now")

    def _parse(self, value: str | None, default: dt.datetime) -> dt.datetime:
        if not value:
            return default
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as error:
            raise CommandError(f"not an ISO date or datetime: {value}") from error
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    def handle(self, *args, since=None, until=None, **options):
        now = timezone.now()
        summary = reconcile(since=self._parse(since, now - dt.timedelta(days=7)), until=self._parse(until, now),
                            now=now)
        for key, value in dataclasses.asdict(summary).items():
            self.stdout.write(f"{key}: {value}")
