"""Recompute the oversight summary tables, as the periodic task does."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from oversight import services, stats


class Command(BaseCommand):
    help = ("Recompute the sharing statistics (summary tables) from usage, bookings, service records and "
            "charges. Default: the current year (and the previous one in January and February).")

    def add_arguments(self, parser):
        parser.add_argument("--year", type=int, action="append", help="a year to recompute (repeatable)")
        parser.add_argument("--all", action="store_true", help="every year with logged usage")

    def handle(self, *args, **options):
        if options["all"]:
            years = stats.years_with_records() or services.years_to_refresh()
        else:
            years = options["year"] or services.years_to_refresh()
        for year in years:
            summary = services.refresh_statistics(year=year)
            if summary.skipped:
                self.stdout.write(self.style.WARNING(f"{year}: another refresh is running; skipped"))
                continue
            self.stdout.write(f"{year}: {summary.instruments} instruments, {summary.month_rows} instrument-months, "
                              f"{summary.user_rows} user rows, {summary.invoice_rows} invoice rows "
                              f"in {summary.seconds:.2f} s")
