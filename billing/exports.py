"""Finance exports: one row per charge, as CSV (UTF-8 with BOM) or XLSX, streamed.

Rows come from one query read with ``iterator(chunk_size)``, so a city's year goes out in flat
memory. CSV leaves as it is written. XLSX is a zip that can only be finished at the end:
openpyxl's write-only mode spools the rows to a temporary file, and the finished file is sent in
chunks, so memory stays flat there too. Text cells that a spreadsheet would run as a formula
(starting with = + - @, a tab or a carriage return) are quoted with a leading apostrophe.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from .models import BillingAccount, Charge
from .money import ZERO

CHUNK = 2000
FILE_CHUNK = 64 * 1024
BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

HEADERS = [
    "charge_id", "period", "service_start", "kind", "account_number", "account_name", "project", "funding_programme",
    "payer", "provider", "instrument", "asset_number", "user", "service_record", "quantity", "unit", "unit_price",
    "surcharge", "amount", "voucher_share", "amount_due", "currency", "invoice_number", "reason",
]
FIELDS = [
    "id", "period", "service_start", "kind", "account__number", "account__name", "account__kind",
    "account__funding_programme", "account__billing_name", "account__organization__name_zh", "provider__name_zh",
    "instrument__name_zh", "instrument__asset_number", "user__username", "user__full_name", "item__service_record",
    "quantity", "unit", "unit_price", "surcharge", "amount", "voucher_amount", "currency", "invoice__number", "reason",
]
MONEY_COLUMNS = {"unit_price", "surcharge", "amount", "voucher_share", "amount_due"}
AMOUNT, VOUCHER, DUE = HEADERS.index("amount"), HEADERS.index("voucher_share"), HEADERS.index("amount_due")
START = HEADERS.index("service_start")


def safe_text(value: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (CSV injection)."""
    if value and value.startswith(FORMULA_START):
        return "'" + value
    return value


def export_queryset(charges: QuerySet[Charge]) -> Iterator[tuple]:
    """The rows, as tuples of ``FIELDS``, read in chunks (a server-side cursor on PostgreSQL)."""
    return charges.order_by("period", "id").values_list(*FIELDS).iterator(chunk_size=CHUNK)


def _text(value) -> str:
    return "" if value is None else safe_text(value)


def _cells(row: tuple, zone) -> list:
    """One row of ``HEADERS`` from one tuple of ``FIELDS``: text guarded, time local, numbers as numbers."""
    (charge_id, period, start, kind, number, name, account_kind, programme, billing_name, payer, provider,
     instrument, asset, username, full_name, record, quantity, unit, unit_price, surcharge, amount, voucher,
     currency, invoice, reason) = row
    if quantity is not None and quantity == quantity.to_integral_value():
        quantity = quantity.quantize(Decimal(1))
    return [
        charge_id, period, start.astimezone(zone).replace(tzinfo=None), kind, _text(number), _text(name),
        _text(number) if account_kind == BillingAccount.Kind.PROJECT else "", _text(programme),
        _text(billing_name or payer), _text(provider), _text(instrument), _text(asset), _text(full_name or username),
        record, quantity, unit, unit_price, surcharge, amount, voucher, amount - voucher, currency, invoice or "",
        _text(reason),
    ]


class Totals:
    def __init__(self):
        self.count = 0
        self.amount = self.voucher = ZERO

    def add(self, cells: list) -> None:
        self.count += 1
        self.amount += cells[AMOUNT]
        self.voucher += cells[VOUCHER]

    def row(self) -> list:
        row: list = [""] * len(HEADERS)
        row[0], row[1] = "TOTAL", self.count
        row[AMOUNT], row[VOUCHER], row[DUE] = self.amount, self.voucher, self.amount - self.voucher
        return row


class _Line:
    """A file-like object whose write() returns what it was given (csv.writer → generator)."""

    def write(self, value: str) -> str:
        return value


def csv_stream(rows: Iterator[tuple]) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    zone = timezone.get_current_timezone()
    yield (BOM + writer.writerow(HEADERS)).encode()
    totals = Totals()
    batch: list[str] = []
    for row in rows:
        cells = _cells(row, zone)
        totals.add(cells)
        cells[START] = cells[START].strftime("%Y-%m-%d %H:%M")
        batch.append(writer.writerow(cells))
        if len(batch) >= 1000:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()
    yield writer.writerow(totals.row()).encode()


def xlsx_stream(rows: Iterator[tuple], *, title: str = "charges") -> Iterator[bytes]:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append(HEADERS)
    zone = timezone.get_current_timezone()
    totals = Totals()
    styled = {index: ("yyyy-mm-dd hh:mm" if header == "service_start" else "#,##0.00")
              for index, header in enumerate(HEADERS) if header in MONEY_COLUMNS or header == "service_start"}
    for row in rows:
        # Text is already guarded (safe_text), so a plain value never becomes a formula; only the
        # money and date columns need a cell object for their number format.
        cells = _cells(row, zone)
        totals.add(cells)
        for index, number_format in styled.items():
            cell = WriteOnlyCell(sheet, value=cells[index])
            cell.number_format = number_format
            cells[index] = cell
        sheet.append(cells)
    total_cells = []
    for index, value in enumerate(totals.row()):
        cell = WriteOnlyCell(sheet, value=value)
        cell.font = Font(bold=True)
        if index in styled and isinstance(value, Decimal):
            cell.number_format = "#,##0.00"
        total_cells.append(cell)
    sheet.append(total_cells)
    with tempfile.TemporaryFile() as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(FILE_CHUNK):
            yield chunk
