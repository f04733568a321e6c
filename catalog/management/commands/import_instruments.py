"""Import a lab's instrument sheet (CSV or XLSX). A dry run unless --commit; all rows or none."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog import services
from instrumentshare.accounts.models import Lab, User
from instrumentshare.core.errors import DomainError
from instrumentshare.core.spreadsheets import MAX_UPLOAD_BYTES


class Command(BaseCommand):
    help = "Check (and with --commit, import) instruments from a CSV or XLSX file into a lab, as drafts."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--lab", required=True, help="the lab's code")
        parser.add_argument("--user", required=True, help="username of a manager of that lab (the audited actor)")
        parser.add_argument("--commit", action="store_true", help="import; without it, only check")

    def handle(self, *args, **options):
        lab = Lab.objects.filter(code=options["lab"]).first()
        actor = User.objects.filter(username=options["user"], is_active=True).first()
        if lab is None or actor is None:
            raise CommandError("Unknown lab or user.")
        path = Path(options["file"])
        try:
            with path.open("rb") as file:
                imported = services.import_instrument_file(actor=actor, lab=lab, filename=path.name,
                                                           data=file.read(MAX_UPLOAD_BYTES + 1),
                                                           dry_run=not options["commit"])
        except DomainError as error:
            raise CommandError(error.detail) from error
        result = imported.result
        for problem in imported.problems:
            self.stdout.write(f"line {problem['line']}: {problem['field']}: {problem['message']}")
        if imported.ignored_headers:
            self.stdout.write(f"ignored columns: {', '.join(imported.ignored_headers)}")
        if not result.ok:
            raise CommandError(f"{len(result.problems)} problems in {result.rows} rows; nothing imported.")
        if result.dry_run:
            self.stdout.write(f"{result.valid_rows} rows are fine. Run again with --commit to import them.")
        else:
            self.stdout.write(self.style.SUCCESS(f"imported {len(result.created)} instruments into {lab.code}."))
