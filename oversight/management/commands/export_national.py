"""Export a quarter to the national platform (stored once per organization and quarter)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from instrumentshare.core.errors import DomainError
from oversight import national, services


class Command(BaseCommand):
    help = ("Build, store and send each reporting organization's export for a quarter (default: the last one). "
            "An export that exists already is left as it is; one that failed to send is sent again.")

    def add_arguments(self, parser):
        parser.add_argument("--quarter", help="YYYY-Qn, e.g. 2026-Q1 (default: the last quarter)")
        parser.add_argument("--organization", type=int, action="append", help="organization id (repeatable)")
        parser.add_argument("--refresh", action="store_true", help="recompute the year's statistics first")

    def handle(self, *args, **options):
        from django.utils import timezone

        period = options["quarter"] or services.previous_quarter(timezone.localdate())
        try:
            year, _quarter = services.parse_quarter(period)
        except DomainError as error:
            raise CommandError(error.detail) from error
        if options["refresh"]:
            services.refresh_statistics(year=year)
        for organization_id in options["organization"] or national.reporting_organization_ids():
            try:
                export, created = services.export_quarter(actor=None, organization_id=organization_id, period=period)
            except DomainError as error:
                raise CommandError(error.detail) from error
            state = "created" if created else "already there"
            sent = f"sent to {export.destination}" if export.sent_at else f"NOT sent: {export.last_error}"
            self.stdout.write(f"{export.period} organization {organization_id}: {state}, "
                              f"{export.instrument_count} instruments, {export.service_record_count} service records, "
                              f"{sent}")
