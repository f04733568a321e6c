import json
import sys

from django.core.management.base import BaseCommand, CommandError

from instrumentshare.audit import services


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains. Exit 0 when whole; non-zero naming the first bad row."

    def add_arguments(self, parser):
        parser.add_argument("--file", help="verify an exported JSON-lines file instead of the database")
        parser.add_argument("--expect-head", action="append", default=[], metavar="HASH",
                            help="a seal head published earlier (the public audit page, a national export): "
                                 "fail unless the seal chain passes through it; may be given more than once")

    def handle(self, *args, file=None, expect_head=(), **options):
        if file:
            with open(file, encoding="utf-8") if file != "-" else sys.stdin as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            problem = services.verify_exported(rows)
            count = len(rows)
        else:
            problem = services.verify()
            from instrumentshare.audit.models import AuditEvent

            count = AuditEvent.objects.count()
            for head in expect_head:
                problem = problem or services.verify_expected_head(head)
        if problem:
            raise CommandError(f"audit trail broken at {problem}")
        self.stdout.write(self.style.SUCCESS(f"audit trail whole: {count} events verified"))
