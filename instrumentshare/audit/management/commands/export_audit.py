import json
import sys

from django.core.management.base import BaseCommand

from instrumentshare.audit import services


class Command(BaseCommand):
    help = "Write the audit trail as JSON lines (chain order), for anyone to verify with verify_audit --file."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-")

    def handle(self, *args, output="-", **options):
        handle = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
        try:
            for row in services.export_rows():
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        finally:
            if handle is not sys.stdout:
                handle.close()
