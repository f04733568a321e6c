"""iCalendar (RFC 5545): invitations (METHOD:REQUEST / CANCEL) and feeds, written as text.

The icalendar library's object model took seconds for a feed of 5,000 bookings, so events are
written directly: a few content lines each, TEXT values escaped (backslash, semicolon, comma,
line breaks), parameter values quoted with RFC 6868's caret escapes, and every line folded at 75
octets without splitting a UTF-8 character. Times are written in UTC ("Z"), so no VTIMEZONE is
needed. The tests read every calendar back with the icalendar library.

A feed reads plain rows (``FEED_FIELDS``, no model instances); an invitation turns its one
booking into the same row, so both go through one writer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import NamedTuple

from django.conf import settings
from django.utils import timezone

from .models import Booking

PRODID = "-//InstrumentShare//Bookings//ZH-EN"
STATUS = {
    Booking.State.PENDING: "TENTATIVE",
    Booking.State.CONFIRMED: "CONFIRMED",
    Booking.State.COMPLETED: "CONFIRMED",
    Booking.State.NO_SHOW: "CONFIRMED",
    Booking.State.CANCELLED: "CANCELLED",
    Booking.State.REJECTED: "CANCELLED",
}
CRLF = "\r\n"
FOLD_AT = 75  # octets per line, CRLF excluded (RFC 5545 3.1)
# A line of this many characters or fewer fits in 75 octets whatever they are (UTF-8: at most 4 each).
SURELY_SHORT = FOLD_AT // 4


class EventRow(NamedTuple):
    """What one VEVENT says about a booking: the columns of ``FEED_FIELDS``, in order."""

    uid: object
    sequence: int
    start: dt.datetime
    end: dt.datetime
    updated_at: dt.datetime
    state: str
    purpose: str
    booking_id: int
    instrument_name_zh: str
    instrument_name_en: str
    address: str
    room: str
    lab_name_zh: str
    lab_name_en: str
    lab_email: str
    user_email: str
    user_full_name: str
    user_first_name: str
    user_last_name: str
    username: str


FEED_FIELDS = (
    "uid", "sequence", "start", "end", "updated_at", "state", "purpose", "pk", "instrument__name_zh",
    "instrument__name_en", "instrument__address", "instrument__room", "instrument__lab__name_zh",
    "instrument__lab__name_en", "instrument__lab__contact_email", "user__email", "user__full_name",
    "user__first_name", "user__last_name", "user__username",
)
# A public feed shows busy times only: the first columns are all it reads.
PUBLIC_FEED_FIELDS = FEED_FIELDS[:6]


def row_of(booking: Booking) -> EventRow:
    instrument, lab, user = booking.instrument, booking.instrument.lab, booking.user
    return EventRow(booking.uid, booking.sequence, booking.start, booking.end, booking.updated_at, booking.state,
                    booking.purpose, booking.pk, instrument.name_zh, instrument.name_en, instrument.address,
                    instrument.room, lab.name_zh, lab.name_en, lab.contact_email, user.email, user.full_name,
                    user.first_name, user.last_name, user.username)


# --- RFC 5545 text ---------------------------------------------------------------------------


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon and comma escaped, any line break as \\n."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.replace("\n", "\\n")


def quote_parameter(value: str) -> str:
    """A parameter value, always quoted; a double quote, caret or line break escaped as RFC 6868 says."""
    value = value.replace("^", "^^").replace('"', "^'")
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return '"' + value.replace("\n", "^n") + '"'


def fold(line: str) -> str:
    """Fold a content line at 75 octets (continuation lines start with a space), never inside a character."""
    if len(line) <= SURELY_SHORT:
        return line
    data = line.encode()
    if len(data) <= FOLD_AT:
        return line
    parts, begin, room = [], 0, FOLD_AT
    while len(data) - begin > room:
        cut = begin + room
        while data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before its character
            cut -= 1
        parts.append(data[begin:cut])
        begin, room = cut, FOLD_AT - 1  # the leading space counts
    parts.append(data[begin:])
    return b"\r\n ".join(parts).decode()


def utc(moment: dt.datetime) -> str:
    """20260301T020000Z. Formatted by hand: strftime was the feed's biggest cost."""
    moment = moment.astimezone(dt.UTC)
    return "%04d%02d%02dT%02d%02d%02dZ" % (  # noqa: UP031 - the fastest of the ways measured
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


# --- what the events say -------------------------------------------------------------------------


def uid_of(booking: Booking) -> str:
    return f"{booking.uid}@instrumentshare"


def summary(name_zh: str, name_en: str) -> str:
    return f"仪器预约 Instrument booking: {name_zh} / {name_en or name_zh}"


def location(address: str, room: str, lab_name_zh: str) -> str:
    return " ".join(part for part in (address, room) if part) or lab_name_zh


def summary_of(booking: Booking) -> str:
    return summary(booking.instrument.name_zh, booking.instrument.name_en)


def location_of(booking: Booking) -> str:
    return location(booking.instrument.address, booking.instrument.room, booking.instrument.lab.name_zh)


def _default_sender() -> str:
    return settings.DEFAULT_FROM_EMAIL.split("<")[-1].rstrip(">")


def organizer_address() -> str:
    """Where calendar clients send their replies (iMIP REPLY goes to the ORGANIZER): the mailbox the
    platform reads (``IMIP_ADDRESS``), by default the sender of the invitations."""
    return settings.IMIP_ADDRESS or _default_sender()


def _organizer(lab: str, sender: str) -> str:
    """The lab as the organizer's name, the platform's mailbox as its address; if that mailbox is not the
    sender's, SENT-BY says who sends on its behalf, so clients see sender and organizer agree (RFC 6047 3)."""
    address = organizer_address()
    sent_by = "" if address.casefold() == sender.casefold() else f';SENT-BY="mailto:{sender}"'
    return fold(f"ORGANIZER;CN={quote_parameter(lab)}{sent_by}:mailto:{address}")


class _Writer:
    """Writes VEVENTs of one calendar; lines that only depend on the instrument or the person are built once."""

    def __init__(self, *, stamp: str | None, private: bool, rsvp: bool = False):
        self.stamp = stamp  # None: each event's DTSTAMP is its last change (a feed, RFC 5545 3.8.7.2)
        self.private = private
        self.rsvp = ";RSVP=TRUE" if rsvp else ""  # an invitation asks for a reply: Decline cancels the booking
        self.site = settings.SITE_URL
        self.sender = _default_sender()
        self.places: dict[tuple, str] = {}
        self.people: dict[tuple, str] = {}

    def _place(self, row: EventRow) -> str:
        key = (row.instrument_name_zh, row.instrument_name_en, row.address, row.room, row.lab_name_zh,
               row.lab_name_en, row.lab_email)
        lines = self.places.get(key)
        if lines is None:
            lab = row.lab_name_zh if not row.lab_name_en else f"{row.lab_name_zh} / {row.lab_name_en}"
            lines = self.places[key] = CRLF.join((
                fold("SUMMARY:" + escape_text(summary(row.instrument_name_zh, row.instrument_name_en))),
                fold("LOCATION:" + escape_text(location(row.address, row.room, row.lab_name_zh))),
                _organizer(lab, self.sender),
                *([fold("CONTACT:" + escape_text(f"{lab} <{row.lab_email}>"))] if row.lab_email else []),
            )) + CRLF
        return lines

    def _attendee(self, row: EventRow) -> str:
        key = (row.user_email, row.user_full_name, row.user_first_name, row.user_last_name, row.username, row.state)
        line = self.people.get(key)
        if line is None:
            # The same name as User.display_name.
            name = row.user_full_name or f"{row.user_first_name} {row.user_last_name}".strip() or row.username
            partstat = "ACCEPTED" if row.state == Booking.State.CONFIRMED else "NEEDS-ACTION"
            line = self.people[key] = fold(f"ATTENDEE;CN={quote_parameter(name)};ROLE=REQ-PARTICIPANT;"
                                           f"PARTSTAT={partstat}{self.rsvp}:mailto:{row.user_email}") + CRLF
        return line

    def event(self, row, *, cancelled: bool = False) -> str:
        uid, sequence, start, end, updated_at, state = row[:6]
        changed = utc(updated_at)
        if not self.private:
            # Busy time only, under UIDs of its own ("busy-"): a calendar that imports this feed beside the
            # person's own feed or invitations holds two different events, not one UID twice.
            return (f"BEGIN:VEVENT\r\nUID:busy-{uid}@instrumentshare\r\nSEQUENCE:{sequence}\r\n"
                    f"DTSTAMP:{changed}\r\nDTSTART:{utc(start)}\r\nDTEND:{utc(end)}\r\n"
                    f"LAST-MODIFIED:{changed}\r\nSTATUS:CONFIRMED\r\n"
                    "SUMMARY:已预约 Booked\r\nTRANSP:OPAQUE\r\nEND:VEVENT\r\n")
        head = (f"BEGIN:VEVENT\r\nUID:{uid}@instrumentshare\r\nSEQUENCE:{sequence}\r\n"
                f"DTSTAMP:{self.stamp or changed}\r\nDTSTART:{utc(start)}\r\nDTEND:{utc(end)}\r\n"
                f"LAST-MODIFIED:{changed}\r\nSTATUS:{'CANCELLED' if cancelled else STATUS[state]}\r\n")
        url = f"{self.site}/bookings/{row.booking_id}/"
        return (head + self._place(row) + self._attendee(row)
                + fold("DESCRIPTION:" + escape_text(f"{row.purpose}\n{url}")) + CRLF
                + fold("URL:" + url) + "\r\nEND:VEVENT\r\n")


def _calendar_head(*, method: str | None = None, name: str | None = None) -> list[str]:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    if method:
        lines.append(f"METHOD:{method}")
    if name:
        lines += [fold("X-WR-CALNAME:" + escape_text(name)), "REFRESH-INTERVAL;VALUE=DURATION:PT15M",
                  "X-PUBLISHED-TTL:PT15M"]
    return [CRLF.join(lines) + CRLF]


def invitation(booking: Booking, method: str, *, now: dt.datetime | None = None) -> bytes:
    """One booking as an iTIP message: METHOD:REQUEST for new/changed, METHOD:CANCEL otherwise."""
    writer = _Writer(stamp=utc(now or timezone.now()), private=True, rsvp=method == "REQUEST")
    parts = _calendar_head(method=method)
    parts.append(writer.event(row_of(booking), cancelled=method == "CANCEL"))
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts).encode()


class Feed(NamedTuple):
    body: bytes
    last_modified: dt.datetime | None   # the latest change of any event in it (an empty feed: None)


def feed(rows: Iterable[tuple], *, name: str, private: bool = True) -> Feed:
    """A subscribed calendar of ``rows`` (``FEED_FIELDS`` tuples, or ``PUBLIC_FEED_FIELDS`` when not private).

    Each DTSTAMP is the booking's last change, so an unchanged feed is the same bytes (an ETag holds).
    """
    writer = _Writer(stamp=None, private=private)
    make = EventRow._make if private else tuple
    parts = _calendar_head(name=name)
    last = None
    for row in rows:
        event = make(row)
        parts.append(writer.event(event))
        last = event[4] if last is None or event[4] > last else last
    parts.append("END:VCALENDAR\r\n")
    return Feed("".join(parts).encode(), last)
