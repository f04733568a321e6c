"""Logbook upload: a lab's own record of use (CSV or XLSX), checked row by row, then all or nothing.

Columns (Chinese or English headers): 资产编号/asset_number, 用户名/username, 开始时间/start,
结束时间/end, 样品数/samples. Times without an offset are the instrument's local time.
Re-uploading the same rows changes nothing: each row's content is its idempotency key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from django.db import transaction

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import User
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Invalid
from instrumentshare.core.spreadsheets import read_table

from ..models import UsageSession

HEADERS = {
    "资产编号": "asset_number", "asset_number": "asset_number",
    "用户名": "username", "username": "username",
    "开始时间": "start", "start": "start",
    "结束时间": "end", "end": "end",
    "样品数": "samples", "samples": "samples",
}
REQUIRED = ("asset_number", "start", "end")


@dataclass
class RowError:
    line: int
    reason: str


@dataclass
class Result:
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = True


def _parse_time(value, zone) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value).strip().replace("/", "-")
        parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


class _RowRefused(ValueError):
    """One row of the file is wrong; the reason is what the user reads beside its line number."""


class _Reader:
    """Turns the rows of one file into sessions, looking each instrument and user up once."""

    def __init__(self, actor, header: list[str | None]):
        self.header = header
        self.instruments = {i.asset_number: i for i in Instrument.objects.filter(
            lab_id__in=people.managed_lab_ids(actor))}
        self.users: dict[str, User | None] = {}

    def values(self, raw: list) -> dict:
        return {name: raw[index] if index < len(raw) else "" for index, name in enumerate(self.header) if name}

    def user(self, username: str) -> User | None:
        if not username:
            return None
        if username not in self.users:
            self.users[username] = User.objects.filter(username=username).first()
        if self.users[username] is None:
            raise _RowRefused(f"unknown user {username}")
        return self.users[username]

    def session(self, values: dict) -> UsageSession:
        instrument = self.instruments.get(str(values.get("asset_number", "")).strip())
        if instrument is None:
            raise _RowRefused("unknown asset number, or not an instrument of your labs")
        start, end = _times(values, instrument.zone)
        username = str(values.get("username") or "").strip()
        user = self.user(username)
        samples = _samples(values.get("samples"))
        key = f"{instrument.pk}|{username}|{start.isoformat()}|{end.isoformat()}"
        return UsageSession(instrument=instrument, user=user, start=start, end=end, samples=samples,
                            source=UsageSession.Source.IMPORT,
                            external_ref="import-" + hashlib.sha256(key.encode()).hexdigest()[:40])


def _times(values: dict, zone) -> tuple[dt.datetime, dt.datetime]:
    try:
        start, end = _parse_time(values["start"], zone), _parse_time(values["end"], zone)
    except (ValueError, TypeError) as error:
        raise _RowRefused("start and end must be dates and times, e.g. 2026-11-03 09:30") from error
    if start >= end:
        raise _RowRefused("end must be after start")
    if end - start > dt.timedelta(days=7):
        raise _RowRefused("a session longer than 7 days is not plausible")
    return start, end


def _samples(value) -> int:
    try:
        samples = int(value or 0)
    except (ValueError, TypeError):
        samples = -1
    if samples < 0:
        raise _RowRefused("samples must be a whole number")
    return samples


def _header(row: list) -> list[str | None]:
    header = [HEADERS.get(str(cell).strip().lower() if str(cell).strip().isascii() else str(cell).strip())
              for cell in row]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise Invalid("missing_columns", f"Missing columns: {', '.join(missing)}.")
    return header


def import_logbook(*, actor, data: bytes, filename: str, dry_run: bool = True) -> Result:
    rows = read_table(data, filename)
    reader = _Reader(actor, _header(rows[0]))
    result = Result(rows=len(rows) - 1, dry_run=dry_run)
    sessions = []
    for line, raw in enumerate(rows[1:], start=2):
        values = reader.values(raw) if raw is not None else {}
        if not any(str(v).strip() for v in values.values()):
            continue   # a blank line
        try:
            sessions.append(reader.session(values))
        except _RowRefused as refused:
            result.errors.append(RowError(line, str(refused)))
    if result.errors or dry_run:
        return result
    with transaction.atomic():
        existing = set(UsageSession.objects.filter(external_ref__in=[s.external_ref for s in sessions])
                       .values_list("instrument_id", "external_ref"))
        new = [s for s in sessions if (s.instrument_id, s.external_ref) not in existing]
        UsageSession.objects.bulk_create(new)
        result.created, result.unchanged = len(new), len(sessions) - len(new)
        record(actor=actor, action="usage.logbook_imported", target=("usage.import", filename[:60]),
               after={"created": result.created, "unchanged": result.unchanged, "rows": result.rows})
    return result
