"""Files the bureau hands in: CSV of any table or chart, and the annual evaluation workbook (XLSX).

CSV is UTF-8 with a byte order mark (Excel reads Chinese right) and text cells that a spreadsheet
would run as a formula are quoted (``core.spreadsheets``' guard). Ratios are written as
percentages with two decimals, their header saying so.
"""

from __future__ import annotations

import io
from decimal import Decimal

from django.utils.translation import gettext as _
from openpyxl.utils import get_column_letter

from instrumentshare.core.spreadsheets import write_csv

from . import evaluation as evaluation_module
from . import queries
from .charts import Chart
from .conf import setting
from .models import InstrumentYearStat
from .queries import Scope, StatRow
from .stats import year_fraction

PERCENT_FORMAT = "0.00%"
MONEY_FORMAT = "#,##0.00"


def _percent_header(header: str, kind: str) -> str:
    return f"{header} (%)" if kind == "ratio" else header


def _csv_value(value, kind: str):
    if value is None:
        return ""
    if kind == "ratio":
        return (Decimal(value) * 100).quantize(Decimal("0.01"))
    return value


def table_csv(headers: list[str], kinds: list[str], rows: list[list]) -> bytes:
    return write_csv([_percent_header(str(h), k) for h, k in zip(headers, kinds, strict=True)],
                     ([_csv_value(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows))


def stat_rows_csv(rows: list[StatRow]) -> bytes:
    columns = queries.STAT_COLUMNS
    return table_csv([str(header) for header, _kind, _get in columns], [kind for _header, kind, _get in columns],
                     [[get(row) for _header, _kind, get in columns] for row in rows])


def chart_csv(chart: Chart) -> bytes:
    return table_csv(chart.headers, chart.kinds, chart.rows)


# --- the evaluation workbook ----------------------------------------------------------------------


def _text_cell(sheet, text: str):
    """A cell typed as text: a spreadsheet never runs it as a formula (so it needs no apostrophe)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    return cell


def _sheet(workbook, title: str, headers: list[str], kinds: list[str], rows: list[list]):
    """One sheet, streamed (write-only mode: memory and time stay linear in the rows)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    sheet = workbook.create_sheet(title=title[:31])
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(10, min(40, len(str(header)) * 2))
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = _text_cell(sheet, str(header))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    formats = {"ratio": PERCENT_FORMAT, "money": MONEY_FORMAT}
    for row in rows:
        cells = []
        for value, kind in zip(row, kinds, strict=True):
            value = float(value) if isinstance(value, Decimal) else ("" if value is None else value)
            if isinstance(value, str):
                value = _text_cell(sheet, value)
            elif kind in formats and value not in (None, ""):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = formats[kind]
                value = cell
            cells.append(value)
        sheet.append(cells)
    return sheet


def _evaluation_sheet(workbook, ranked: list) -> None:
    headers = [_("Rank"), _("Organization"), _("Instruments"), _("Mandatory"), _("Open mandatory")]
    kinds = ["number", "text", "number", "number", "number"]
    for code, label in evaluation_module.INDICATORS:
        headers += [str(label), _("%(indicator)s: score") % {"indicator": label}]
        # Rates are ratios; external results (services per instrument) and ratings (1–5) are plain numbers.
        kinds += ["number" if code in ("external_results", "user_ratings") else "ratio", "number"]
    headers += [_("Score"), _("Grade")]
    kinds += ["number", "text"]
    rows = []
    for item in ranked:
        row = [item.rank, item.name, item.instruments, item.mandatory, item.open_mandatory]
        for code, _label in evaluation_module.INDICATORS:
            row += [item.values.get(code), item.scores.get(code)]
        rows.append(row + [item.score, item.grade_label])
    _sheet(workbook, _("Evaluation"), headers, kinds, rows)


def _instruments_sheet(workbook, scope: Scope, year: int) -> None:
    threshold = Decimal(setting("OVERSIGHT_REPORT_INSTRUMENT_VALUE"))
    factor = year_fraction(year)
    stats = InstrumentYearStat.objects.filter(scope.q(), year=year, original_value__gte=threshold).select_related(
        "instrument", "organization", "lab", "category").order_by("organization__name_zh", "lab__name_zh",
                                                                  "instrument__asset_number")
    headers = [_("Organization"), _("Lab"), _("Asset number"), _("Instrument"), _("Category code"), _("Category"),
               _("Original value (CNY)"), _("Purpose"), _("Mandatory"), _("Listed and shared"), _("Effective hours"),
               _("External hours"), _("Share rate"), _("Quota hours"), _("Utilization"), _("Service records"),
               _("External service records"), _("Income (CNY)"), _("External income (CNY)"), _("Average rating")]
    kinds = ["text"] * 6 + ["money", "text", "text", "text", "number", "number", "ratio", "number", "ratio",
                            "number", "number", "money", "money", "number"]
    rows = []  # a city's list (tens of thousands of rows) is fine in memory; the sheet itself streams
    for stat in stats.iterator(chunk_size=2000):
        row = StatRow(key=stat.instrument_id, quota_factor=factor, quota_hours=stat.quota_hours)
        for name in queries.SUMMED:
            setattr(row, name, getattr(stat, name))
        rows.append([stat.organization.name_zh, stat.lab.name_zh, stat.instrument.asset_number,
                     stat.instrument.name_zh, stat.category_id, stat.category.name_zh, stat.original_value,
                     str(stat.instrument.get_purpose_display()), _("yes") if stat.is_mandatory else _("no"),
                     _("yes") if stat.is_open else _("no"), row.effective_hours, row.external_hours, row.share_rate,
                     row.due_quota_hours, row.utilization, row.service_records, row.external_service_records,
                     row.income, row.external_income, row.average_rating])
    title = _("Instruments from %(value)s CNY") % {"value": f"{threshold:,.0f}"}
    _sheet(workbook, title, headers, kinds, rows)


def _income_sheet(workbook, scope: Scope, year: int) -> None:
    rows = queries.summarize(scope, year=year, by="organization")
    headers = [_("Organization"), _("Income (CNY)"), _("External income (CNY)"), _("External share of income"),
               _("Voucher use (CNY)"), _("Invoices issued"), _("External users"), _("External organizations"),
               _("External service records"), _("External hours")]
    kinds = ["text", "money", "money", "ratio", "money", "number", "number", "number", "number", "number"]
    body = [[row.label, row.income, row.external_income,
             queries.ratio(row.external_income, row.income), row.voucher_amount, row.invoices,
             row.external_users, row.external_organizations, row.external_service_records, row.external_hours]
            for row in sorted(rows, key=lambda r: (-r.external_income, r.label))]
    total = StatRow(key=None)
    for row in rows:
        for name in ("income", "external_income", "voucher_amount", "invoices", "external_service_records",
                     "external_minutes"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    body.append([_("Total"), total.income, total.external_income, queries.ratio(total.external_income, total.income),
                 total.voucher_amount, total.invoices, "", "", total.external_service_records, total.external_hours])
    _sheet(workbook, _("External income"), headers, kinds, body)


def evaluation_workbook(*, year: int, organization_ids: set[int] | None) -> bytes:
    """Evaluation ranking, the instrument list from the report value, and the external income summary."""
    from openpyxl import Workbook

    scope = Scope(everything=True) if organization_ids is None else Scope(organization_ids=frozenset(organization_ids))
    workbook = Workbook(write_only=True)
    _evaluation_sheet(workbook, evaluation_module.evaluate(year=year, organization_ids=organization_ids))
    _instruments_sheet(workbook, scope, year)
    _income_sheet(workbook, scope, year)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
