"""``python manage.py close_period 2026-11``: close a month for every provider with something to bill."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from billing.services import closing
from instrumentshare.core.errors import DomainError


class Command(BaseCommand):
    help = "Close a billing period (YYYY-MM): charge its billable items and issue one invoice per account."

    def add_arguments(self, parser):
        parser.add_argument("month", help="The period, e.g. 2026-11")
        parser.add_argument("--organization", type=int, action="append", dest="organizations",
                            help="Only this provider organization (id); repeatable. Default: all with charges.")
        parser.add_argument("--now", help="Pretend it is this moment (ISO 8601 with offset), for tests and replays.")

    def handle(self, *args, month: str, organizations=None, now=None, **options):
        moment = dt.datetime.fromisoformat(now) if now else None
        try:
            periods = closing.close_period(actor=None, month=month, organization_ids=organizations, now=moment)
        except DomainError as error:
            raise CommandError(error.detail) from error
        if not periods:
            self.stdout.write(f"{month}: nothing to bill.")
        for period in periods:
            self.stdout.write(
                f"{month} {period.organization}: {period.state}, {period.charges_created} charges, "
                f"{period.invoices_issued} invoices, {period.unassigned_items} items without account or price")
        failed = [p for p in periods if p.state != "closed"]
        if failed:
            raise CommandError(f"{len(failed)} period(s) did not close; see the log.")
