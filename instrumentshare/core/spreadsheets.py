"""Spreadsheet files in and out, safely. The one place for the formula guard, the byte order mark and the
reading of uploads; the catalog's instrument sheets, the usage logbooks and billing's exports use it.

Writing: in CSV, a text cell that a spreadsheet would run as a formula (it starts with = + - @, a tab or
a carriage return) gets a leading apostrophe, which spreadsheet programs show as text and our importers
take off again (``guarded``, and ``guarded_sql`` for exports the database writes itself, generated from
the same prefixes). In XLSX a cell typed as text is never a formula: text is written as it is. CSV is
UTF-8 with a byte order mark, which Excel needs to read Chinese.

Reading: files come from outside. Uploads are capped (5 MB, 5,000 rows, 100 columns), and an XLSX
file's zip members are measured before openpyxl inflates anything (a few kilobytes can otherwise
unpack to gigabytes). CSV is UTF-8 or GB18030 (what Excel in China saves), comma, semicolon or tab
separated. Every refusal is an ``Invalid`` with a stable code: ``file_too_large``, ``invalid_file``,
``too_many_rows``, ``empty_file``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from decimal import Decimal

from .errors import Invalid

BOM = "\ufeff"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
MAX_COLUMNS = 100
MAX_XLSX_UNCOMPRESSED_BYTES = 60 * 1024 * 1024
MAX_XLSX_MEMBERS = 2000
MAX_XLSX_RATIO = 200  # XML compresses well, but not a thousandfold unless it was built to


# --- writing ----------------------------------------------------------------------------------


def guarded(text: str | None) -> str:
    """Text fit for a cell: '' for nothing, a formula-like start quoted with an apostrophe."""
    if not text:
        return ""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def unguarded(text: str) -> str:
    """What ``guarded`` wrote, read back (an importer reading our own export)."""
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_PREFIXES else text


def safe_cell(value):
    """Any value fit for a cell: None is empty, text is ``guarded``, numbers and dates stay as they are."""
    if value is None:
        return ""
    return guarded(value) if isinstance(value, str) else value


def guarded_sql(column: str) -> str:
    """``guarded`` in SQL, for a file the database writes (COPY): '' and NULL become NULL, which COPY writes
    as nothing. Built from ``FORMULA_PREFIXES``, so the two cannot drift apart (a test runs both)."""
    starts = ", ".join(f"chr({ord(prefix)})" for prefix in FORMULA_PREFIXES)
    return f"nullif(CASE WHEN left({column}, 1) IN ({starts}) THEN '''' || {column} ELSE {column} END, '')"


def write_csv(headers: list[str], rows: Iterable[list]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in headers])
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return (BOM + buffer.getvalue()).encode("utf-8")


def _typed(row) -> list:
    return [float(v) if isinstance(v, Decimal) else ("" if v is None else v) for v in row]


def write_xlsx(headers: list[str], rows: Iterable[list], *, title: str = "Sheet1") -> bytes:
    """A workbook of one sheet: text cells typed as text (a spreadsheet never runs them as formulas, so unlike
    CSV they need no apostrophe), numbers as numbers, dates as dates."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook(write_only=False)
    sheet = workbook.active
    sheet.title = title[:31]
    sheet.append(_typed([*headers]))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.data_type = "s"
    for row in rows:
        sheet.append(_typed(row))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"   # typed as text: never run as a formula, so no apostrophe is needed
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, min(40, len(header) * 2))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- reading ----------------------------------------------------------------------------------


def check_xlsx_archive(data: bytes, *, max_uncompressed: int = MAX_XLSX_UNCOMPRESSED_BYTES) -> None:
    """Refuse an XLSX file (a zip archive) that would inflate to too much, before anything inflates it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise Invalid("invalid_file", "This is not an XLSX file.") from error
    members = archive.infolist()
    if len(members) > MAX_XLSX_MEMBERS:
        raise Invalid("file_too_large", "The XLSX file has too many parts.")
    # The sizes are the archive's own claims; zipfile refuses to inflate a member beyond its
    # declared size, so checking the claims bounds what openpyxl can be made to read.
    total = sum(member.file_size for member in members)
    if total > max_uncompressed:
        raise Invalid("file_too_large", f"The XLSX file unpacks to more than {max_uncompressed // 2**20} MB.")
    for member in members:
        if member.compress_size and member.file_size / member.compress_size > MAX_XLSX_RATIO:
            raise Invalid("file_too_large", "The XLSX file is suspiciously compressed; save it again as plain XLSX.")


def _xlsx_rows(data: bytes) -> Iterator[list]:
    check_xlsx_archive(data)
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file
        raise Invalid("invalid_file", "The XLSX file cannot be read.") from error
    try:
        for row in workbook.worksheets[0].iter_rows(values_only=True):
            yield list(row[:MAX_COLUMNS])
    except Exception as error:  # a damaged sheet inside a sound archive
        raise Invalid("invalid_file", "The XLSX file cannot be read.") from error
    finally:
        workbook.close()


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GB18030/GBK by default
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Invalid("invalid_file", "The CSV file is neither UTF-8 nor GB18030 text.")


def _csv_rows(data: bytes) -> Iterator[list]:
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            yield row[:MAX_COLUMNS]
    except csv.Error as error:
        raise Invalid("invalid_file", f"The CSV file cannot be read: {error}.") from error


def _blank(row: list) -> bool:
    return all(value is None or str(value).strip() == "" for value in row)


def read_table(data: bytes, filename: str) -> list[list | None]:
    """The table in an uploaded file, header first, the limits applied. A blank line after the header
    is ``None`` (so line numbers stay those the user sees)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise Invalid("file_too_large", "The file is larger than 5 MB.")
    name = (filename or "").lower()
    if name.endswith(".xlsx") or data[:4] == b"PK\x03\x04":
        source = _xlsx_rows(data)
    elif name.endswith((".csv", ".txt")) or not name:
        source = _csv_rows(data)
    else:
        raise Invalid("invalid_file", "Upload a .csv or .xlsx file.")
    rows: list[list | None] = []
    filled = 0
    for row in source:
        if rows and _blank(row):
            rows.append(None)
            continue
        rows.append(row)
        filled += 1
        if filled > MAX_ROWS + 1:  # the header plus MAX_ROWS data rows
            raise Invalid("too_many_rows", f"The file has more than {MAX_ROWS} rows; split it.")
    if not rows or rows[0] is None or _blank(rows[0]):
        raise Invalid("empty_file", "The file is empty.")
    return rows
