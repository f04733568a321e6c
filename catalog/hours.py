"""Opening hours as people write them ("08:30-12:00, 13:30-17:30") and as the models keep them (minutes)."""

from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _

from instrumentshare.core.errors import Invalid

WEEKDAYS = [_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday")]
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
