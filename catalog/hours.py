"""Opening hours as people write them ("08:30-12:00, 13:30-17:30") and as the models keep them (minutes)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from django.utils.translation import gettext_lazy as _

from instrumentshare.core.errors import Invalid

WEEKDAYS = [_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday")]
Interval = tuple[dt.datetime, dt.datetime]
_TIME = re.compile(r"^([01]?\d|2[0-4])[:：]([0-5]\d)$")


def format_minute(minute: int | None) -> str:
    if minute is None:
        return ""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_time(text: str) -> int:
    """Minutes after midnight for "HH:MM"; "24:00" is the end of the day."""
    match = _TIME.match(text.strip())
    if not match:
        raise Invalid("invalid_time", _("“%(text)s” is not a time like 08:30.") % {"text": text})
    minute = int(match.group(1)) * 60 + int(match.group(2))
    if minute > 1440:
        raise Invalid("invalid_time", _("“%(text)s” is after 24:00.") % {"text": text})
    return minute


def parse_day(text: str) -> list[tuple[int, int]]:
    """ "08:30-12:00, 13:30-17:30" -> [(510, 720), (810, 1050)]; empty means closed."""
    intervals = []
    for part in re.split(r"[,，;；]", text or ""):
        part = part.strip()
        if not part:
            continue
        pieces = re.split(r"\s*[-–~～至]\s*", part)
        if len(pieces) != 2:
            raise Invalid("invalid_hours", f"“{part}” is not a range like 08:30-17:30.")
        opens, closes = parse_time(pieces[0]), parse_time(pieces[1])
        if opens >= closes:
            raise Invalid("invalid_hours", f"“{part}” closes before it opens.")
        intervals.append((opens, closes))
    return sorted(intervals)


def format_day(intervals: list[tuple[int, int]]) -> str:
    return ", ".join(f"{format_minute(o)}-{format_minute(c)}" for o, c in intervals)


def weekly(rules) -> list[dict]:
    """Seven rows, Monday first: the weekday's name and its intervals as text."""
    days: dict[int, list[tuple[int, int]]] = {day: [] for day in range(7)}
    for rule in rules:
        days[rule.weekday].append((rule.open_minute, rule.close_minute))
    return [{"weekday": day, "label": WEEKDAYS[day], "intervals": sorted(days[day]), "text": format_day(days[day])}
            for day in range(7)]


# --- opening hours as UTC intervals (the one source: bookings' free time and the materialized windows) ---


def _is_public_holiday(day: dt.date) -> bool:
    """A statutory Chinese holiday (not an ordinary weekend; weekly rules cover those)."""
    import chinese_calendar

    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year the package does not know yet
        return False
    return bool(is_holiday and name)


def _local_to_utc(day: dt.date, minute: int, zone) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
    return local.replace(tzinfo=zone).astimezone(dt.UTC)


def opening_intervals(instrument, start: dt.datetime, end: dt.datetime, *,
                      rules: Iterable | None = None, exceptions: Iterable | None = None) -> list[Interval]:
    """Opening hours that intersect [start, end), as UTC intervals.

    ``rules`` and ``exceptions`` may be passed in (already fetched for many instruments);
    otherwise they are read from the database.
    """
    zone = instrument.zone
    policy = getattr(instrument, "policy", None)
    first_day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last_day = end.astimezone(zone).date()
    by_weekday: dict[int, list[tuple[int, int]]] = {}
    for rule in instrument.opening_rules.all() if rules is None else rules:
        by_weekday.setdefault(rule.weekday, []).append((rule.open_minute, rule.close_minute))
    if exceptions is None:
        exceptions = instrument.opening_exceptions.filter(date__gte=first_day, date__lte=last_day)
    by_date = {exception.date: exception for exception in exceptions}
    skip_holidays = bool(policy and policy.closed_on_public_holidays)
    result: list[Interval] = []
    day = first_day
    while day <= last_day:
        exception = by_date.get(day)
        if exception is not None:
            spans = [] if exception.closed else [(exception.open_minute, exception.close_minute)]
        elif skip_holidays and _is_public_holiday(day):
            spans = []
        else:
            spans = by_weekday.get(day.weekday(), [])
        for open_minute, close_minute in spans:
            a, b = _local_to_utc(day, open_minute, zone), _local_to_utc(day, close_minute, zone)
            a, b = max(a, start), min(b, end)
            if a < b:
                result.append((a, b))
        day += dt.timedelta(days=1)
    return merge(result)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged
