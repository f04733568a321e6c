"""The sharing compliance report on the command line, as a table or a CSV/XLSX file."""

from __future__ import annotations

import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from catalog import compliance
from instrumentshare.core import spreadsheets as sheets


class Command(BaseCommand):
    help = ("List publicly funded instruments above the threshold that are not listed, not shared externally, "
            "past their deadline, or missing required fields.")

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["table", "csv", "xlsx"], default="table")
        parser.add_argument("--output", "-o", help="write to this file (required for xlsx); default: standard output")
        parser.add_argument("--organization", type=int, action="append", help="organization id (repeatable)")
        parser.add_argument("--as-of", type=date.fromisoformat, help="judge deadlines as of this day (YYYY-MM-DD)")
        parser.add_argument("--language", default="zh-hans", help="headers and labels: zh-hans (default) or en")

    def handle(self, *args, **options):
        if options["format"] == "xlsx" and not options["output"]:
            raise CommandError("--format xlsx needs --output FILE.")
        organizations = set(options["organization"]) if options["organization"] else None
        with translation.override(options["language"]):
            report = compliance.build_report(organization_ids=organizations, today=options["as_of"])
            headers, rows = compliance.export_table(report)
            if options["format"] == "table":
                self._table(report)
                return
            if options["format"] == "csv":
                content = sheets.write_csv(headers, rows)
            else:
                content = sheets.write_xlsx(headers, rows, title="compliance")
        if options["output"]:
            with open(options["output"], "wb") as handle:
                handle.write(content)
            self.stderr.write(f"{len(report.rows)} instruments with problems written to {options['output']}")
        else:
            sys.stdout.buffer.write(content)

    def _table(self, report: compliance.ComplianceReport) -> None:
        write = self.stdout.write
        write(f"as of {report.as_of.isoformat()}")
        for summary in report.summaries:
            write(f"{summary.name_zh}: {summary.mandatory} mandatory, {summary.flagged} with problems, "
                  f"{summary.rate}% compliant")
        write("")
        for row in report.rows:
            instrument = row.instrument
            estimated = " (deadline estimated Mon–Fri)" if row.estimated else ""
            write(f"{instrument.organization.name_zh} | {instrument.asset_number} | {instrument.name_zh} | "
                  f"{instrument.original_value} | {', '.join(row.flag_labels)}{estimated}")
        write(f"{len(report.rows)} instruments with problems.")
