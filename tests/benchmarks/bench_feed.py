"""A per-user iCalendar feed of 5,000 bookings, through the feed URL in-process, against SQL + plain text.

The 5,000 bookings are lent to one person inside a transaction that is rolled back afterwards.
The raw limit is one SELECT of the same rows and columns through psycopg, written out as RFC 5545
text with plain string formatting (escaping and line folding included, no library).
"""

from __future__ import annotations

import datetime as dt
import time

from .harness import Context, Result, median

FIGURE = "iCalendar feed, one user, 5,000 bookings"
RAW_FEED = """
SELECT b.uid, b.sequence, b.start, b."end", b.updated_at, b.state, b.purpose, b.id, i.name_zh, i.name_en,
       i.address, i.room, l.name_zh, l.name_en, l.contact_email, u.email, u.full_name, u.username
FROM bookings_booking b JOIN catalog_instrument i ON i.id = b.instrument_id JOIN accounts_lab l ON l.id = i.lab_id
JOIN accounts_user u ON u.id = b.user_id
WHERE b.user_id = %(user)s AND b.start < %(end)s AND b."end" > %(start)s ORDER BY b.start LIMIT 20000
"""
STATUS = {"pending": "TENTATIVE", "cancelled": "CANCELLED", "rejected": "CANCELLED"}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    data = line.encode()
    if len(data) <= 75:
        return line
    parts, current = [], ""
    for char in line:
        if len((current + char).encode()) > (75 if not parts else 74):
            parts.append(current)
            current = char
        else:
            current += char
    parts.append(current)
    return "\r\n ".join(parts)


def raw_feed(conn, user_id: int, start, end) -> bytes:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//InstrumentShare//Bookings//ZH-EN", "CALSCALE:GREGORIAN"]
    utc = "%Y%m%dT%H%M%SZ"
    for (uid, sequence, b_start, b_end, updated, state, purpose, pk, name_zh, name_en, address, room, lab_zh,
         lab_en, lab_email, email, full_name, username) in conn.execute(RAW_FEED, {"user": user_id, "start": start,
                                                                                  "end": end}):
        lines += [
            "BEGIN:VEVENT", f"UID:{uid}@instrumentshare", f"SEQUENCE:{sequence}", f"DTSTAMP:{stamp}",
            f"DTSTART:{b_start.astimezone(dt.UTC):{utc}}", f"DTEND:{b_end.astimezone(dt.UTC):{utc}}",
            f"LAST-MODIFIED:{updated.astimezone(dt.UTC):{utc}}", f"STATUS:{STATUS.get(state, 'CONFIRMED')}",
            _fold(f"SUMMARY:{_escape(f'仪器预约 Instrument booking: {name_zh} / {name_en or name_zh}')}"),
            _fold(f"LOCATION:{_escape(' '.join(p for p in (address, room) if p) or lab_zh)}"),
            _fold("DESCRIPTION:" + _escape(purpose + "\n" + f"/bookings/{pk}/")),
            _fold(f'ORGANIZER;CN="{lab_zh} / {lab_en}":mailto:{lab_email}'),
            _fold(f'ATTENDEE;CN="{full_name or username}";ROLE=REQ-PARTICIPANT:mailto:{email}'),
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def run(ctx: Context) -> list[Result]:
    from django.db import connection, transaction
    from django.test import Client

    from bookings import queries
    from bookings import services as feeds
    from bookings.models import Booking
    from instrumentshare.accounts.models import User

    size = ctx.size(smoke=50, quick=5000, full=5000)
    repeat = ctx.size(smoke=2, quick=3, full=5)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(days=queries.FEED_PAST_DAYS), now + dt.timedelta(days=queries.FEED_FUTURE_DAYS)
    with transaction.atomic():
        user = User.objects.filter(is_active=True, is_platform_admin=False).order_by("id").first()
        ids = list(Booking.objects.filter(start__lt=end, end__gt=start).order_by("?").values_list("id", flat=True)
                   [:size])
        Booking.objects.filter(pk__in=ids).update(user=user)
        _token, plain = feeds.create_feed_token(user=user)
        client = Client()
        url = f"/bookings/feeds/{plain}.ics"
        response = client.get(url, secure=True)
        events = response.content.count(b"BEGIN:VEVENT")
        ours = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url, secure=True)
            ours.append((time.perf_counter() - started) * 1000)
        raw = []
        if ctx.postgres:
            # The raw run must see the lent rows: it reads through this transaction's own connection.
            conn = connection.connection
            for _ in range(repeat):
                started = time.perf_counter()
                body = raw_feed(conn, user.pk, start, end)
                raw.append((time.perf_counter() - started) * 1000)
            raw_events = body.count(b"BEGIN:VEVENT")
        transaction.set_rollback(True)
    value = median(ours)
    result = Result(FIGURE, value, "ms", raw=median(raw) if raw else None, target="≤ 200 ms", met=value <= 200,
                    details={"events": events, "status": response.status_code, "bytes": len(response.content),
                             "runs": repeat})
    if raw:
        result.details["raw_events"] = raw_events
    return [result]
