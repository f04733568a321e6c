"""Export a lab's instruments in the import format."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from catalog import queries, spreadsheet
from instrumentshare.accounts.models import Lab


class Command(BaseCommand):
    help = "Write a lab's instrument records as CSV (UTF-8 with BOM) or XLSX, in the format the importer reads."

    def add_arguments(self, parser):
        parser.add_argument("--lab", required=True, help="the lab's code")
        parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
        parser.add_argument("--output", "-o", help="file to write (required for xlsx)")

    def handle(self, *args, **options):
        lab = Lab.objects.filter(code=options["lab"]).first()
        if lab is None:
            raise CommandError("Unknown lab.")
        if options["format"] == "xlsx" and not options["output"]:
            raise CommandError("--format xlsx needs --output FILE.")
        content = spreadsheet.export_instruments(queries.lab_instruments(lab), fmt=options["format"])
        if options["output"]:
            with open(options["output"], "wb") as handle:
                handle.write(content)
        else:
            sys.stdout.buffer.write(content)
