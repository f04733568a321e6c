"""iMIP replies (RFC 6047): what a booker's calendar client answers to an invitation.

Outlook, Gmail and Apple Mail send a METHOD:REPLY to the invitation's ORGANIZER, which is the
platform's mailbox (``IMIP_ADDRESS``). ``read_mailbox`` fetches the unread messages of that mailbox
over IMAP and hands each calendar part to ``handle_reply``:

- PARTSTAT=DECLINED from the booker, for the booking's current revision: the booker cancels the
  booking, exactly as on the page (the usual rules: a late cancellation costs credit; a booking that
  has started cannot be cancelled), audited with the channel ``imip``;
- ACCEPTED (or TENTATIVE): nothing to do; the booking already holds the time;
- anything else (an unknown UID, a reply from someone who is not the booker, an older revision,
  a booking already cancelled, a malformed calendar): one log line, nothing changed.

A reply read twice cancels once: a cancelled booking stays cancelled.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import imaplib
import logging
import re
import uuid
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from django.conf import settings
from icalendar import Calendar

from instrumentshare.core.errors import DomainError

from ..models import Booking
from .lifecycle import cancel_booking

logger = logging.getLogger(__name__)

UID = re.compile(r"^([0-9a-f-]{36})@instrumentshare$", re.IGNORECASE)
MAX_MESSAGE_BYTES = 1_000_000
MAX_MESSAGES_PER_RUN = 500


@dataclass(frozen=True)
class Outcome:
    booking_id: int | None
    action: str  # "cancelled", "accepted", "ignored"
    why: str = ""


def _address(value) -> str:
    return str(value or "").removeprefix("mailto:").removeprefix("MAILTO:").strip().casefold()


def handle_reply(calendar_bytes: bytes, *, sender: str, now: dt.datetime | None = None) -> list[Outcome]:
    """Act on one iTIP REPLY. ``sender`` is the e-mail's From address: it must be the booker too."""
    try:
        calendar = Calendar.from_ical(calendar_bytes)
    except ValueError as error:
        logger.info("imip: unreadable calendar from %s: %s", sender, error)
        return [Outcome(None, "ignored", "unreadable")]
    if str(calendar.get("METHOD", "")).upper() != "REPLY":
        logger.info("imip: %s sent METHOD:%s, not a REPLY", sender, calendar.get("METHOD", ""))
        return [Outcome(None, "ignored", "not_a_reply")]
    return [_one_event(event, sender=sender.casefold(), now=now) for event in calendar.walk("VEVENT")]


def _one_event(event, *, sender: str, now) -> Outcome:
    matched = UID.match(str(event.get("UID", "")))
    booking = None
    if matched:
        booking = (Booking.objects.select_related("user").filter(uid=uuid.UUID(matched.group(1))).first())
    if booking is None:
        logger.info("imip: reply from %s names no booking of ours (UID %s)", sender, event.get("UID", ""))
        return Outcome(None, "ignored", "unknown_uid")
    attendees = event.get("ATTENDEE", [])
    attendees = attendees if isinstance(attendees, list) else [attendees]
    booker = booking.user.email.casefold()
    mine = [attendee for attendee in attendees if _address(attendee) == booker]
    if not mine or sender != booker:
        logger.info("imip: reply about booking %s from %s, who is not its booker", booking.pk, sender)
        return Outcome(booking.pk, "ignored", "not_the_booker")
    partstat = str(mine[0].params.get("PARTSTAT", "")).upper()
    sequence = int(event.get("SEQUENCE", 0) or 0)
    if sequence < booking.sequence:
        logger.info("imip: %s answered revision %s of booking %s, which is at %s now", sender, sequence,
                    booking.pk, booking.sequence)
        return Outcome(booking.pk, "ignored", "older_revision")
    if partstat in ("ACCEPTED", "TENTATIVE"):
        return Outcome(booking.pk, "accepted")
    if partstat != "DECLINED":
        logger.info("imip: %s answered %s for booking %s: nothing to do", sender, partstat or "nothing", booking.pk)
        return Outcome(booking.pk, "ignored", "no_decision")
    if booking.state not in (Booking.State.PENDING, Booking.State.CONFIRMED):
        return Outcome(booking.pk, "ignored", "not_active")
    try:
        cancel_booking(actor=booking.user, booking_id=booking.pk, reason="Declined in the calendar (iMIP reply)",
                       now=now)
    except DomainError as error:
        logger.info("imip: %s declined booking %s, which cannot be cancelled: %s", sender, booking.pk, error)
        return Outcome(booking.pk, "ignored", error.code)
    return Outcome(booking.pk, "cancelled")


def replies_in(raw: bytes) -> tuple[str, list[bytes]]:
    """The From address of one e-mail and its text/calendar parts (inline or attached)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    sender = parseaddr(str(message.get("From", "")))[1]
    parts = []
    for part in message.walk():
        if part.get_content_type() in ("text/calendar", "application/ics"):
            payload = part.get_payload(decode=True)
            if payload:
                parts.append(payload)
    return sender, parts


def handle_message(raw: bytes, *, now: dt.datetime | None = None) -> list[Outcome]:
    sender, parts = replies_in(raw[:MAX_MESSAGE_BYTES])
    if not parts:
        logger.info("imip: a message from %s without a calendar part", sender)
        return [Outcome(None, "ignored", "no_calendar")]
    return [outcome for part in parts for outcome in handle_reply(part, sender=sender, now=now)]


def _connect(url: str) -> tuple[imaplib.IMAP4, str]:
    parts = urlsplit(url)
    secure = parts.scheme == "imaps"
    client = (imaplib.IMAP4_SSL if secure else imaplib.IMAP4)(parts.hostname or "localhost",
                                                              parts.port or (993 if secure else 143), timeout=30)
    if parts.scheme == "imap" and "STARTTLS" in client.capabilities:
        client.starttls()
    client.login(unquote(parts.username or ""), unquote(parts.password or ""))
    return client, unquote(parts.path.lstrip("/")) or "INBOX"


def read_mailbox(url: str | None = None, *, now: dt.datetime | None = None) -> list[Outcome]:
    """Fetch the unread messages of the replies mailbox, act on each, mark it read. Returns the outcomes."""
    url = url or settings.IMIP_IMAP_URL
    if not url:
        return []
    client, mailbox = _connect(url)
    outcomes: list[Outcome] = []
    try:
        client.select(mailbox)
        _, found = client.search(None, "UNSEEN")
        for number in (found[0] or b"").split()[:MAX_MESSAGES_PER_RUN]:
            _, data = client.fetch(number, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), b"")
            outcomes.extend(handle_message(raw, now=now))
            client.store(number, "+FLAGS", "\\Seen")  # after acting: a crash re-reads it, and it cancels once
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error) as error:
            logger.info("imip: logout: %s", error)
    return outcomes
