"""Finance exports: one row per charge, as CSV (UTF-8 with BOM) or XLSX, streamed.

Text cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return) are quoted with a leading apostrophe, in every path below (``core.spreadsheets``: ``guarded``,
and ``guarded_sql`` for the rows the database writes).

CSV: on PostgreSQL the database writes the rows itself (``COPY (SELECT …) TO STDOUT`` in CSV
format), already guarded and formatted as ``csv.writer`` writes them, and they leave as they
come: a million charges in seconds instead of minutes. The totals row is one aggregate in the same
REPEATABLE READ snapshot, so it adds up to the rows even while charges are being written.
Elsewhere (SQLite, or inside a transaction the caller holds, whose snapshot we may not choose)
rows are read with ``iterator(chunk_size)`` and written by ``csv.writer``. A test holds both
paths to the same bytes.

XLSX is a zip that can only be finished at the end. The sheet's XML is written directly, one
string per row (a spreadsheet library's per-cell objects cost more than everything else), into a
zip spooled to a temporary file, which is then sent in chunks. Memory stays flat either way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.db import connections, transaction
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from instrumentshare.core.spreadsheets import BOM, guarded, guarded_sql

from .models import BillingAccount, Charge
from .money import ZERO

CHUNK = 2000
FILE_CHUNK = 64 * 1024

# The columns: a stable key (what programs and the tests name), and the header people read, in Chinese
# (the default) or English (``lang=en``).
COLUMNS = [
    ("charge_id", "费用编号", "Charge"), ("period", "账期", "Period"), ("service_start", "服务开始", "Service start"),
    ("kind", "类型", "Kind"), ("account_number", "账户编号", "Account number"), ("account_name", "账户名称", "Account"),
    ("project", "项目", "Project"), ("funding_programme", "资助计划", "Funding programme"),
    ("payer", "付款方", "Payer"), ("provider", "服务方", "Provider"), ("instrument", "仪器", "Instrument"),
    ("asset_number", "资产编号", "Asset number"),
    ("user", "用户", "User"), ("service_record", "服务记录", "Service record"), ("quantity", "数量", "Quantity"),
    ("unit", "单位", "Unit"), ("unit_price", "单价", "Unit price"), ("surcharge", "附加费", "Surcharge"),
    ("amount", "金额", "Amount"), ("voucher_share", "创新券支付", "Paid by voucher"),
    ("amount_due", "应付金额", "Amount due"), ("currency", "币种", "Currency"), ("invoice_number", "发票号", "Invoice"),
    ("reason", "原因", "Reason"),
]
HEADERS = [key for key, _zh, _en in COLUMNS]
LANGUAGES = ("zh", "en")


def header_row(lang: str = "zh") -> list[str]:
    """The headers in ``lang`` (zh or en; anything else is zh)."""
    return [en if lang == "en" else zh for _key, zh, en in COLUMNS]


def label(key: str, lang: str = "zh") -> str:
    return header_row(lang)[HEADERS.index(key)]


FIELDS = [
    "id", "period", "service_start", "kind", "account__number", "account__name", "account__kind",
    "account__funding_programme", "account__billing_name", "account__organization__name_zh", "provider__name_zh",
    "instrument__name_zh", "instrument__asset_number", "user__username", "user__full_name", "item__service_record",
    "quantity", "unit", "unit_price", "surcharge", "amount", "voucher_amount", "currency", "invoice__number", "reason",
]
MONEY_COLUMNS = {"unit_price", "surcharge", "amount", "voucher_share", "amount_due"}
AMOUNT, VOUCHER, DUE = HEADERS.index("amount"), HEADERS.index("voucher_share"), HEADERS.index("amount_due")
START = HEADERS.index("service_start")


class ExportRows:
    """The charges of one export. Iterating gives tuples of ``FIELDS`` in chunks (a server-side cursor
    on PostgreSQL); the CSV writer may instead have PostgreSQL write the file (``COPY``)."""

    def __init__(self, charges: QuerySet[Charge]):
        self.charges = charges

    def __iter__(self) -> Iterator[tuple]:
        rows = self.charges.order_by("period", "id").values_list(*FIELDS)
        if connections[rows.db].vendor == "postgresql":
            return _server_side(rows)
        return rows.iterator(chunk_size=CHUNK)


def _server_side(rows: QuerySet) -> Iterator[tuple]:
    """What ``iterator(chunk_size)`` does on PostgreSQL, but times are read by psycopg's C loader: Django's
    own (pure Python, to set the time zone it already has) took a third of an XLSX export's time."""
    from psycopg.types.datetime import TimestamptzLoader

    sql, params = rows.query.sql_with_params()
    with connections[rows.db].chunked_cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)  # this cursor only
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CHUNK):
            yield from chunk


def export_queryset(charges: QuerySet[Charge]) -> ExportRows:
    """The rows of an export, ordered by period and id."""
    return ExportRows(charges)


def _plain_text(value: str | None) -> str:
    return value or ""


def _cells(row: tuple, zone, guarded=guarded) -> list:
    """One row of ``HEADERS`` from one tuple of ``FIELDS``: text guarded (for CSV; an XLSX cell typed as
    text is never a formula, so there it is written as it is), time local, numbers as numbers."""
    (charge_id, period, start, kind, number, name, account_kind, programme, billing_name, payer, provider,
     instrument, asset, username, full_name, record, quantity, unit, unit_price, surcharge, amount, voucher,
     currency, invoice, reason) = row
    if quantity is not None and quantity == quantity.to_integral_value():
        quantity = quantity.quantize(Decimal(1))
    return [
        charge_id, period, start.astimezone(zone).replace(tzinfo=None), kind, guarded(number), guarded(name),
        guarded(number) if account_kind == BillingAccount.Kind.PROJECT else "", guarded(programme),
        guarded(billing_name or payer), guarded(provider), guarded(instrument), guarded(asset),
        guarded(full_name or username),
        record, quantity, unit, unit_price, surcharge, amount, voucher, amount - voucher, currency, invoice or "",
        guarded(reason),
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


# --- CSV ------------------------------------------------------------------------------------------

COPY_BATCH = 2000  # rows per chunk sent


def csv_stream(rows: Iterable[tuple], *, lang: str = "zh") -> Iterator[bytes]:
    """The CSV file in chunks: ``rows`` from ``export_queryset`` (or any iterable of ``FIELDS`` tuples)."""
    zone = timezone.get_current_timezone()
    if isinstance(rows, ExportRows) and _database_may_write(rows.charges, zone):
        yield from _csv_by_copy(rows.charges, zone.key, lang)
    else:
        yield from _csv_by_rows(rows, zone, lang)


def _csv_by_rows(rows: Iterable[tuple], zone, lang: str) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    yield (BOM + writer.writerow(header_row(lang))).encode()
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


def _database_may_write(charges: QuerySet[Charge], zone) -> bool:
    connection = connections[charges.db]
    # Inside the caller's transaction we cannot ask for one snapshot for rows and totals.
    return connection.vendor == "postgresql" and not connection.in_atomic_block and bool(getattr(zone, "key", None))


def _plain(column: str) -> str:
    return f"nullif({column}, '')"


# One SQL expression per column of HEADERS, over the columns c0… of one FIELDS row, written as _cells() and
# csv.writer write them: numbers as Python prints Decimals, the time in the zone (the one parameter).
_C = {name: f"c{index}" for index, name in enumerate(FIELDS)}
COPY_COLUMNS = [
    _C["id"], _plain(_C["period"]), f"to_char({_C['service_start']} AT TIME ZONE %s, 'YYYY-MM-DD HH24:MI')",
    _plain(_C["kind"]), guarded_sql(_C["account__number"]), guarded_sql(_C["account__name"]),
    f"CASE WHEN {_C['account__kind']} = '{BillingAccount.Kind.PROJECT.value}' "
    f"THEN {guarded_sql(_C['account__number'])} END",
    guarded_sql(_C["account__funding_programme"]),
    guarded_sql(f"coalesce(nullif({_C['account__billing_name']}, ''), {_C['account__organization__name_zh']})"),
    guarded_sql(_C["provider__name_zh"]), guarded_sql(_C["instrument__name_zh"]),
    guarded_sql(_C["instrument__asset_number"]),
    guarded_sql(f"coalesce(nullif({_C['user__full_name']}, ''), {_C['user__username']})"),
    _C["item__service_record"],
    # A whole quantity without its zeros (Decimal.quantize(1)); numeric's own scale otherwise.
    f"CASE WHEN {_C['quantity']} = trunc({_C['quantity']}) THEN trunc({_C['quantity']}) ELSE {_C['quantity']} END",
    _plain(_C["unit"]), _C["unit_price"], _C["surcharge"], _C["amount"], _C["voucher_amount"],
    f"{_C['amount']} - {_C['voucher_amount']}", _plain(_C["currency"]), _plain(_C["invoice__number"]),
    guarded_sql(_C["reason"]),
]


def copy_query(charges: QuerySet[Charge], zone_name: str) -> tuple[str, tuple]:
    """``COPY (SELECT …) TO STDOUT`` of the export's rows, and its parameters."""
    sql, params = charges.order_by().values_list(*FIELDS).query.sql_with_params()
    names = ", ".join(_C.values())
    # Only this module's constants and Django's compiled query are pasted in; values travel as parameters.
    select = (f"SELECT {', '.join(COPY_COLUMNS)} FROM ({sql}) AS charge({names}) "  # noqa: S608
              f"ORDER BY {_C['period']}, {_C['id']}")
    return f"COPY ({select}) TO STDOUT (FORMAT csv)", (zone_name, *params)


def _crlf(messages: list) -> bytes:
    """COPY ends each row (one message each) with \\n; csv.writer with \\r\\n."""
    data = b"".join(messages)
    if data.count(b"\n") == len(messages):  # one row per message, no line break inside a quoted cell
        return data.replace(b"\n", b"\r\n")
    # A line break inside a cell (rare): the csv module reads the rows and writes them as the generic path does.
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv.reader(io.StringIO(data.decode(), newline="")))
    return buffer.getvalue().encode()


def _csv_by_copy(charges: QuerySet[Charge], zone_name: str, lang: str) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    statement, params = copy_query(charges, zone_name)
    with transaction.atomic(using=charges.db), connections[charges.db].cursor() as cursor:
        # The rows and their totals from one snapshot, however long the download takes.
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield (BOM + writer.writerow(header_row(lang))).encode()
        batch: list = []
        with cursor.cursor.copy(statement, params) as copy:
            for row in copy:
                batch.append(row)
                if len(batch) >= COPY_BATCH:
                    yield _crlf(batch)
                    batch = []
        if batch:
            yield _crlf(batch)
        found = charges.order_by().aggregate(count=Count("pk"), amount=Sum("amount"), voucher=Sum("voucher_amount"))
    totals = Totals()
    totals.count, totals.amount, totals.voucher = found["count"], found["amount"] or ZERO, found["voucher"] or ZERO
    yield writer.writerow(totals.row()).encode()


# --- XLSX -----------------------------------------------------------------------------------------

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
PACKAGE = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'),
    "_rels/.rels": (
        f'<Relationships xmlns="{RELATIONSHIPS}"><Relationship Id="rId1" Type="{DOCUMENT}/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{RELATIONSHIPS}">'
        f'<Relationship Id="rId1" Type="{DOCUMENT}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{DOCUMENT}/styles" Target="styles.xml"/></Relationships>'),
    # Cell styles (s="…"): 0 plain, 1 date and time, 2 money (built-in format 4, #,##0.00), 3 bold, 4 bold money.
    "xl/styles.xml": (
        f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm"/>'
        '</numFmts><fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="4" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
        '<xf numFmtId="4" fontId="1" fillId="0" borderId="0" xfId="0" applyNumberFormat="1" applyFont="1"/>'
        '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        '</styleSheet>'),
}
PLAIN, DATE_STYLE, MONEY_STYLE, BOLD, BOLD_MONEY = range(5)
# XML 1.0 cannot carry most control characters; OOXML writes them as _xHHHH_, so text that already looks
# like _xHHHH_ has its underscore written as _x005F_. & and < must be escaped; a carriage return too, or
# the reader turns it into a line feed.
_XML_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;", "_": "_x005F_"}
EXCEL_EPOCH = dt.datetime(1899, 12, 30)  # noqa: DTZ001 - Excel's serial dates are wall-clock times
SECONDS_PER_DAY = 86400


def _xml_char(match: re.Match) -> str:
    char = match.group()
    return _XML_ESCAPES.get(char) or f"_x{ord(char):04X}_"


def xml_text(value: str) -> str:
    return _XML_SPECIAL.sub(_xml_char, value) if _XML_SPECIAL.search(value) else value


def _column_letters(count: int) -> list[str]:
    letters = []
    for index in range(count):
        name, number = "", index + 1
        while number:
            number, rest = divmod(number - 1, 26)
            name = chr(65 + rest) + name
        letters.append(name)
    return letters


LETTERS = _column_letters(len(HEADERS))


def _serial(moment: dt.datetime) -> str:
    """A naive local time as Excel's serial number (days since 1899-12-30, the day's fraction after the point)."""
    delta = moment - EXCEL_EPOCH
    return repr(delta.days + (delta.seconds + delta.microseconds / 1e6) / SECONDS_PER_DAY)


def _text_cell(letter: str, r: int, value: str | None) -> str:
    if not value:
        return ""
    return f'<c r="{letter}{r}" t="inlineStr"><is><t xml:space="preserve">{xml_text(value)}</t></is></c>'


class _Sheet:
    """Writes ``<row>`` elements: text as inline strings, numbers as they print, times as serial dates,
    empty cells left out. The cell's type follows the value, its style the column."""

    def __init__(self):
        self.number = 0
        plain = [""] * len(HEADERS)
        bold = [f' s="{BOLD}"'] * len(HEADERS)
        for header in MONEY_COLUMNS:
            plain[HEADERS.index(header)] = f' s="{MONEY_STYLE}"'
            bold[HEADERS.index(header)] = f' s="{BOLD_MONEY}"'
        self.plain = list(zip(LETTERS, plain, strict=True))
        self.bold = list(zip(LETTERS, bold, strict=True))

    def row(self, cells: list, *, bold: bool = False) -> str:
        self.number += 1
        r = self.number
        parts = [f'<row r="{r}">']
        for (letter, style), value in zip(self.bold if bold else self.plain, cells, strict=True):
            kind = value.__class__
            if kind is str:
                if value:
                    parts.append(f'<c r="{letter}{r}"{style} t="inlineStr"><is><t xml:space="preserve">'
                                 f'{xml_text(value)}</t></is></c>')
            elif kind is Decimal or kind is int:
                parts.append(f'<c r="{letter}{r}"{style}><v>{value}</v></c>')
            elif kind is dt.datetime:
                parts.append(f'<c r="{letter}{r}" s="{DATE_STYLE}"><v>{_serial(value)}</v></c>')
            elif value is not None:
                raise TypeError(f"no XLSX cell for {kind.__name__}")
        parts.append("</row>")
        return "".join(parts)

    def data_row(self, c: list) -> str:
        """``row()`` for the cells of a charge (``_cells``), as one f-string: the loop cost twice as much per row.
        Columns by letter, in HEADERS order (A charge_id … X reason); the tests read every column back."""
        self.number += 1
        r, t = self.number, _text_cell
        record = f'<c r="N{r}"><v>{c[13]}</v></c>' if c[13] is not None else ""
        return (f'<row r="{r}"><c r="A{r}"><v>{c[0]}</v></c>{t("B", r, c[1])}'
                f'<c r="C{r}" s="{DATE_STYLE}"><v>{_serial(c[2])}</v></c>{t("D", r, c[3])}{t("E", r, c[4])}'
                f'{t("F", r, c[5])}{t("G", r, c[6])}{t("H", r, c[7])}{t("I", r, c[8])}{t("J", r, c[9])}'
                f'{t("K", r, c[10])}{t("L", r, c[11])}{t("M", r, c[12])}{record}<c r="O{r}"><v>{c[14]}</v></c>'
                f'{t("P", r, c[15])}<c r="Q{r}" s="{MONEY_STYLE}"><v>{c[16]}</v></c>'
                f'<c r="R{r}" s="{MONEY_STYLE}"><v>{c[17]}</v></c><c r="S{r}" s="{MONEY_STYLE}"><v>{c[18]}</v></c>'
                f'<c r="T{r}" s="{MONEY_STYLE}"><v>{c[19]}</v></c><c r="U{r}" s="{MONEY_STYLE}"><v>{c[20]}</v></c>'
                f'{t("V", r, c[21])}{t("W", r, c[22])}{t("X", r, c[23])}</row>')

    def header(self, lang: str) -> str:
        self.number += 1
        cells = "".join(f'<c r="{letter}1" t="inlineStr"><is><t>{xml_text(name)}</t></is></c>'
                        for letter, name in zip(LETTERS, header_row(lang), strict=True))
        return f'<row r="1">{cells}</row>'


def _sheet_name(title: str) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\ ."""
    name = re.sub(r"[\[\]:*?/\\]", "", title)[:31].strip("'") or "charges"
    return name.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def xlsx_stream(rows: Iterable[tuple], *, title: str = "charges", lang: str = "zh") -> Iterator[bytes]:
    zone = timezone.get_current_timezone()
    totals = Totals()
    sheet = _Sheet()
    with tempfile.TemporaryFile() as spool:
        # Level 1: the sheet XML is mostly repeated markup, so it still shrinks about tenfold, several times faster.
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as package:
            for name, body in PACKAGE.items():
                package.writestr(name, XML_HEAD + body)
            package.writestr("xl/workbook.xml", (
                f'{XML_HEAD}<workbook xmlns="{MAIN}" xmlns:r="{DOCUMENT}"><sheets>'
                f'<sheet name="{_sheet_name(title)}" sheetId="1" r:id="rId1"/></sheets></workbook>'))
            with package.open("xl/worksheets/sheet1.xml", "w") as part:
                batch = [f'{XML_HEAD}<worksheet xmlns="{MAIN}"><sheetData>', sheet.header(lang)]
                for row in rows:
                    cells = _cells(row, zone, guarded=_plain_text)
                    totals.add(cells)
                    batch.append(sheet.data_row(cells))
                    if len(batch) >= 1000:
                        part.write("".join(batch).encode())
                        batch = []
                batch += [sheet.row(totals.row(), bold=True), "</sheetData></worksheet>"]
                part.write("".join(batch).encode())
        spool.seek(0)
        while chunk := spool.read(FILE_CHUNK):
            yield chunk
