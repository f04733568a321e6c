"""``python manage.py bench_export --rows 100000``: stream a finance export of N synthetic charges and
report time, size and peak Python memory (tracemalloc). The charges are written in a transaction
that is rolled back, so a seeded database is left as it was (it needs one instrument and one account)."""

import time
import tracemalloc
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from billing import exports
from billing.models import BillingAccount, Charge
from catalog.models import Instrument

PERIOD = "1999-01"   # a month no real charge is in


class Command(BaseCommand):
    help = "Measure the streamed finance export (CSV and XLSX) over N synthetic charges."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--format", choices=["csv", "xlsx", "both"], default="both")

    def handle(self, *args, rows: int, format: str, **options):
        instrument = Instrument.objects.order_by("pk").first()
        account = BillingAccount.objects.order_by("pk").first()
        if instrument is None or account is None:
            raise CommandError("Needs one instrument and one billing account: run seed_demo first.")
        with transaction.atomic():
            self._fill(instrument, account, rows)
            for kind in (["csv", "xlsx"] if format == "both" else [format]):
                self._measure(kind)
            transaction.set_rollback(True)

    def _fill(self, instrument, account, rows: int) -> None:
        now = timezone.now()
        batch = []
        for n in range(rows):
            batch.append(Charge(kind="adjustment", account=account, provider_id=instrument.organization_id,
                                instrument=instrument, period=PERIOD, service_start=now, reason=f"bench {n}",
                                amount=Decimal(n % 1000) + Decimal("0.25")))
            if len(batch) == 5000:
                Charge.objects.bulk_create(batch)
                batch = []
        Charge.objects.bulk_create(batch)

    def _measure(self, kind: str) -> None:
        stream = exports.csv_stream if kind == "csv" else exports.xlsx_stream
        tracemalloc.start()
        started, size, chunks = time.monotonic(), 0, 0
        for chunk in stream(exports.export_queryset(Charge.objects.filter(period=PERIOD))):
            size += len(chunk)
            chunks += 1
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.stdout.write(f"{kind}: {size / 2**20:.1f} MiB in {chunks} chunks, {time.monotonic() - started:.1f} s, "
                          f"peak Python memory {peak / 2**20:.1f} MiB")
