"""Instrument records in the spreadsheet format labs keep (reading and writing the files themselves, safely:
``instrumentshare.core.spreadsheets``).

The columns follow the national sharing platform's record, with the Chinese headers labs use;
English headers (and a few common Chinese variants) are accepted too. Choice columns take the
Chinese label, the English label or the code. Export writes the same format, so an export can be
edited and imported into another lab.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext_lazy as _

from instrumentshare.core.errors import Invalid
from instrumentshare.core.spreadsheets import unguarded, write_csv, write_xlsx

from .models import Instrument
from .services import ImportRow

# --- the instrument format -----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str  # a service argument, or one of the composite keys below
    header: str  # the Chinese header we write
    english: str
    kind: str = "text"
    required: bool = False
    alternates: tuple[str, ...] = ()


CHOICES = {
    "affiliation": {
        "key_lab": ("重点实验室", "Key laboratory"),
        "engineering_center": ("工程研究中心", "Engineering research center"),
        "analysis_center": ("分析测试中心", "Analysis and testing center"),
        "field_station": ("野外台站", "Field station"),
        "other": ("其他", "Other"),
    },
    "source": {
        "purchased": ("购置", "Purchased"),
        "self_built": ("自研", "Self-built"),
        "donated": ("捐赠", "Donated"),
        "other": ("其他", "Other"),
    },
    "purpose": {"general": ("通用", "General purpose"), "special": ("专用", "Special purpose")},
    "share_mode": {
        "external": ("对外共享", "Shared externally"),
        "internal": ("内部共享", "Internal only"),
        "not_shared": ("不共享", "Not shared"),
    },
    "status": {
        "normal": ("正常", "Normal"),
        "occasional_faults": ("偶有故障", "Occasional faults"),
        "frequent_faults": ("故障频繁", "Frequent faults"),
        "under_repair": ("维修中", "Under repair"),
        "awaiting_disposal": ("待报废", "Awaiting disposal"),
    },
}
# Extra spellings seen in lab sheets.
CHOICE_SYNONYMS = {
    "source": {"研制": "self_built", "自制": "self_built", "采购": "purchased"},
    "purpose": {"通用设备": "general", "专用设备": "special"},
    "share_mode": {"共享": "external", "开放共享": "external", "对外开放": "external", "校内共享": "internal",
                   "内部使用": "internal"},
    "status": {"良好": "normal", "一般": "occasional_faults", "较差": "frequent_faults", "待修": "under_repair"},
}
FUNDING = {
    "funded_central": ("中央财政", "central"),
    "funded_local": ("地方财政", "local"),
    "funded_own": ("自有资金", "own"),
    "funded_other": ("其他", "other"),
}
FUNDING_SYNONYMS = {"中央": "funded_central", "地方": "funded_local", "自筹": "funded_own", "自有": "funded_own",
                    "单位自筹": "funded_own", "其它": "funded_other"}
YES = {"是", "有", "y", "yes", "true", "1", "√"}
NO = {"否", "无", "n", "no", "false", "0", ""}

COLUMNS = [
    Column("name_zh", "仪器名称", "Name (Chinese)", required=True, alternates=("仪器中文名称", "中文名称")),
    Column("name_en", "英文名称", "Name (English)", alternates=("仪器英文名称",)),
    Column("asset_number", "资产编号", "Asset number", required=True, alternates=("资产号", "固定资产编号")),
    Column("category_id", "分类编码", "Category code", required=True, alternates=("仪器分类编码", "分类代码")),
    Column("subject_code", "学科领域代码", "Subject code", alternates=("学科领域", "学科代码")),
    Column("affiliation", "所属载体类型", "Affiliation type", "choice", alternates=("所属载体",)),
    Column("source", "仪器来源", "Source", "choice"),
    Column("funding", "经费来源", "Funding", "funding", alternates=("资金来源",)),
    Column("original_value", "原值（元）", "Original value (CNY)", "money", required=True, alternates=("原值",)),
    Column("country", "产地国别", "Country", alternates=("产地", "国别")),
    Column("manufacturer", "生产制造商", "Manufacturer", alternates=("生产厂家", "制造商", "生产厂商")),
    Column("model_number", "规格型号", "Model", alternates=("型号",)),
    Column("purchase_date", "购置日期", "Purchase date", "date", alternates=("购买日期",)),
    Column("acceptance_date", "验收日期", "Acceptance date", "date", alternates=("启用日期",)),
    Column("purpose", "用途", "Purpose", "choice", alternates=("仪器用途",)),
    Column("specifications", "主要技术指标", "Technical specifications", alternates=("技术指标",)),
    Column("main_functions", "主要功能", "Main functions", alternates=("主要功能及特色",)),
    Column("service_content", "服务内容", "Service content"),
    Column("user_requirements", "对用户要求", "Requirements for users", alternates=("用户须知",)),
    Column("fee_standard", "收费标准", "Fee standard", alternates=("参考收费标准",)),
    Column("district", "所在区", "District", alternates=("所在区县", "区县")),
    Column("address", "安放地址", "Address", alternates=("地址",)),
    Column("room", "房间号", "Room", alternates=("房间",)),
    Column("time_zone", "时区", "Time zone"),
    Column("contact_name", "联系人", "Contact"),
    Column("contact_phone", "联系电话", "Contact phone", alternates=("电话",)),
    Column("contact_email", "联系邮箱", "Contact e-mail", alternates=("电子邮箱", "邮箱", "Contact email")),
    Column("share_mode", "共享模式", "Share mode", "choice", alternates=("共享方式",)),
    Column("status", "运行状态", "Status", "choice", alternates=("仪器状态",)),
    Column("customs_supervised", "海关监管", "Customs supervised", "bool", alternates=("是否海关监管",)),
]
# A header that means the value is in ten-thousands of yuan (万元), as the national platform shows it.
TEN_THOUSAND_HEADERS = ("原值（万元）", "原值(万元)", "Original value (10k CNY)")
BLANK_DEFAULTS = {"affiliation": "other", "source": "purchased", "purpose": "general", "share_mode": "external",
                  "status": "normal"}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unguarded(str(value).strip())   # our own export quotes formula-like text


def _normalize_header(text: str) -> str:
    text = _text(text).lower().replace("（", "(").replace("）", ")")
    return re.sub(r"\s+", "", text)


HEADER_INDEX: dict[str, Column] = {}
for _column in COLUMNS:
    for _name in (_column.header, _column.english, _column.key, *_column.alternates):
        HEADER_INDEX[_normalize_header(_name)] = _column
TEN_THOUSAND_INDEX = {_normalize_header(name) for name in TEN_THOUSAND_HEADERS}


def _parse_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    match = re.fullmatch(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?", text)
    if not match:
        match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)
    problem = str(_("“%(value)s” is not a date; write YYYY-MM-DD.") % {"value": text})
    if not match:
        raise ValueError(problem)
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError as error:  # 2019-13-45
        raise ValueError(problem) from error


def _parse_money(value, factor: int) -> Decimal:
    if isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
    else:
        text = _text(value).replace(",", "").replace("，", "").replace("¥", "").replace("元", "").strip()
        try:
            amount = Decimal(text)
        except InvalidOperation as error:
            raise ValueError(str(_("Not a number."))) from error
    if not amount.is_finite():
        raise ValueError(str(_("Not a number.")))
    return (amount * factor).quantize(Decimal("0.01"))


def _parse_choice(key: str, value) -> str:
    text = _text(value)
    if not text:
        return BLANK_DEFAULTS[key]
    lowered = text.lower()
    for code, (chinese, english) in CHOICES[key].items():
        if lowered in {code, chinese.lower(), english.lower()}:
            return code
    if text in CHOICE_SYNONYMS.get(key, {}):
        return CHOICE_SYNONYMS[key][text]
    allowed = "、".join(chinese for chinese, _english in CHOICES[key].values())
    raise ValueError(str(_("Unknown value “%(value)s”; use one of: %(allowed)s.")
                         % {"value": text, "allowed": allowed}))


def _parse_funding(value) -> dict[str, bool]:
    flags = {name: False for name in FUNDING}
    for part in re.split(r"[;；,，、/+\s]+", _text(value)):
        if not part:
            continue
        lowered = part.lower()
        match = next((name for name, (chinese, english) in FUNDING.items() if lowered in {chinese, english, name}),
                     FUNDING_SYNONYMS.get(part))
        if match is None:
            raise ValueError(str(_("Unknown funding “%(value)s”; use 中央财政, 地方财政, 自有资金 or 其他.")
                                 % {"value": part}))
        flags[match] = True
    return flags


def _parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise ValueError(str(_("Write 是 or 否.")))


@dataclass
class ParsedFile:
    rows: list[ImportRow]
    ignored_headers: list[str]


def _header_columns(header: list) -> tuple[list[tuple[int, Column, int]], list[str]]:
    columns: list[tuple[int, Column, int]] = []
    ignored = []
    for index, title in enumerate(header):
        normalized = _normalize_header(title)
        if not normalized:
            continue
        if normalized in TEN_THOUSAND_INDEX:
            columns.append((index, HEADER_INDEX[_normalize_header("original_value")], 10000))
        elif normalized in HEADER_INDEX:
            columns.append((index, HEADER_INDEX[normalized], 1))
        else:
            ignored.append(_text(title))
    return columns, ignored


def parse_instruments(table: list[list | None]) -> ParsedFile:
    """Turn a table into rows of service arguments, each with its own problems.

    The header is the first row (of the first ten) that names at least two known columns, so a
    title line above it, as lab sheets often have, does no harm. Line numbers are the file's own.
    """
    header_index, columns, ignored = None, [], []
    for index, cells in enumerate(table[:10]):
        if cells is None:
            continue
        found, unknown = _header_columns(cells)
        if len(found) >= 2:
            header_index, columns, ignored = index, found, unknown
            break
    if header_index is None:
        raise Invalid("missing_columns", str(_("No header row found: the first row should name the columns.")))
    present = {column.key for _index, column, _factor in columns}
    missing = [column.header for column in COLUMNS if column.required and column.key not in present]
    if missing:
        raise Invalid("missing_columns", str(_("The header row lacks: %(columns)s.") % {"columns": "、".join(missing)}))
    rows = [_parse_row(index + 1, cells, columns)
            for index, cells in enumerate(table) if index > header_index and cells is not None]
    if not rows:
        raise Invalid("empty_file", str(_("The file has a header but no rows.")))
    return ParsedFile(rows=rows, ignored_headers=ignored)


def _parse_row(line: int, cells: list, columns: list[tuple[int, Column, int]]) -> ImportRow:
    fields: dict = {}
    problems: list[tuple[str, str]] = []
    for index, column, factor in columns:
        raw = cells[index] if index < len(cells) else None
        try:
            _set_value(fields, column, raw, factor)
        except ValueError as error:
            problems.append((column.header, str(error)))
    for column in COLUMNS:
        if column.required and column.key in fields and fields[column.key] in ("", None):
            problems.append((column.header, str(_("Required."))))
    for key, default in BLANK_DEFAULTS.items():
        fields.setdefault(key, default)
    return ImportRow(line=line, fields=fields, problems=problems)


def _set_value(fields: dict, column: Column, raw, factor: int) -> None:
    if column.kind == "funding":
        fields.update(_parse_funding(raw))
    elif column.kind == "choice":
        fields[column.key] = _parse_choice(column.key, raw)
    elif column.kind == "bool":
        fields[column.key] = _parse_bool(raw)
    elif _text(raw) == "":
        if column.kind == "text" and column.key != "time_zone":
            fields[column.key] = ""
        elif column.required:
            fields[column.key] = None
    elif column.kind == "date":
        fields[column.key] = _parse_date(raw)
    elif column.kind == "money":
        fields[column.key] = _parse_money(raw, factor)
    elif column.key == "category_id":
        code = _text(raw)
        # A spreadsheet that took the code for a number dropped its leading zero: 010102 -> 10102.
        fields[column.key] = code.zfill(6) if code.isdigit() else code
    else:
        fields[column.key] = _text(raw)


def column_of(field_name: str) -> str:
    """The header a service's field name stands for, so a problem points at the sheet's column."""
    key = "category_id" if field_name == "category" else field_name
    if key in {"funded_central", "funded_local", "funded_own", "funded_other"}:
        key = "funding"
    column = next((c for c in COLUMNS if c.key == key), None)
    return column.header if column else ("" if field_name == "__all__" else field_name)


def describe_problems(problems) -> list[dict]:
    """Import problems with the sheet's column headers, for people and for the API."""
    return [{"line": p.line, "field": column_of(p.field) if p.field else "", "message": p.message} for p in problems]


# --- export in the same format -------------------------------------------------------------


def _funding_text(instrument: Instrument) -> str:
    return ";".join(chinese for name, (chinese, _english) in FUNDING.items() if getattr(instrument, name))


def _export_value(instrument: Instrument, column: Column):
    if column.kind == "funding":
        return _funding_text(instrument)
    value = getattr(instrument, column.key)
    if column.kind == "choice":
        return CHOICES[column.key][value][0]
    if column.kind == "bool":
        return "是" if value else "否"
    if column.kind == "date":
        return value.isoformat() if value else ""
    return value


def instrument_table(instruments: Iterable[Instrument]) -> tuple[list[str], list[list]]:
    headers = [column.header for column in COLUMNS]
    return headers, [[_export_value(i, column) for column in COLUMNS] for i in instruments]


def export_instruments(instruments: Iterable[Instrument], *, fmt: str) -> bytes:
    headers, rows = instrument_table(instruments)
    if fmt == "xlsx":
        return write_xlsx(headers, rows, title="仪器")
    return write_csv(headers, rows)

