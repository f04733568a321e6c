"""Invitations in the shape the big mail clients take as meetings, and their replies read back.

The replies travel through a real IMAP server (Debian's dovecot, started here on a free port with a
throwaway mailbox); a Decline by the booker cancels the booking once.
"""

import datetime as dt
import email
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.core import mail
from icalendar import Calendar

from bookings import services
from bookings.models import Booking, Notification
from bookings.services import notifications, replies
from instrumentshare.audit.models import AuditEvent
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _book(world, instrument, capture, *, day=1, hour=10):
    start = next_weekday(day, hour)
    with capture(execute=True):
        return services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                       end=start + dt.timedelta(hours=1), purpose="EDS mapping")


def _tree(part, depth=0):
    """The MIME tree as (depth, content type, method parameter, filename) rows."""
    rows = [(depth, part.get_content_type(), part.get_param("method"), part.get_filename())]
    if part.is_multipart():
        for child in part.get_payload():
            rows += _tree(child, depth + 1)
    return rows


@pytest.mark.parametrize("kind", ["invitation", "reminder", "cancellation"])
def test_each_invitation_is_alternative_with_the_calendar_method_and_a_copy_attached(
        kind, world, instrument, settings, django_capture_on_commit_callbacks):
    settings.DEFAULT_FROM_EMAIL = "平台 Platform <calendar@share.example.cn>"
    booking = _book(world, instrument, django_capture_on_commit_callbacks)
    if kind == "cancellation":
        with django_capture_on_commit_callbacks(execute=True):
            services.cancel_booking(actor=world.researcher, booking_id=booking.pk)
    row = Notification.objects.filter(booking=booking).order_by("-id").first()
    row.kind = kind
    now = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)
    message = notifications.build_message(row, now=now)
    parsed = email.message_from_bytes(message.message().as_bytes())
    method = "CANCEL" if kind == "cancellation" else "REQUEST"
    assert _tree(parsed) == [
        (0, "multipart/mixed", None, None),
        (1, "multipart/alternative", None, None),
        (2, "text/plain", None, None),
        (2, "text/calendar", method, None),
        (1, "application/ics", None, "invite.ics"),
    ]
    [calendar_part] = [part for part in parsed.walk() if part.get_content_type() == "text/calendar"]
    calendar = Calendar.from_ical(calendar_part.get_payload(decode=True))
    assert str(calendar["METHOD"]) == calendar_part.get_param("method") == method
    [attached] = [part for part in parsed.walk() if part.get_content_type() == "application/ics"]
    assert attached.get_payload(decode=True) == calendar_part.get_payload(decode=True)
    [event] = calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:calendar@share.example.cn"  # the sender: replies come back to us
    assert "SENT-BY" not in event["ORGANIZER"].params
    assert (event["ATTENDEE"].params.get("RSVP") == "TRUE") == (method == "REQUEST")
    assert parsed["Message-ID"] == f"<booking-{booking.pk}.{kind}.{row.sequence}@share.example.cn>"
    assert parsed["Date"] == "Wed, 02 Dec 2026 09:30:00 +0000"
    assert parsed["Auto-Submitted"] == "auto-generated"
    again = email.message_from_bytes(notifications.build_message(row, now=now).message().as_bytes())
    assert again["Message-ID"] == parsed["Message-ID"]  # a resend is the same message to the client


def test_a_separate_replies_mailbox_is_the_organizer_and_the_sender_is_sent_by(
        world, instrument, settings, django_capture_on_commit_callbacks):
    settings.DEFAULT_FROM_EMAIL = "noreply@share.example.cn"
    settings.IMIP_ADDRESS = "calendar@share.example.cn"
    booking = _book(world, instrument, django_capture_on_commit_callbacks)
    [(_, calendar)] = [(None, Calendar.from_ical(part.get_payload(decode=True)))
                       for part in email.message_from_bytes(mail.outbox[-1].message().as_bytes()).walk()
                       if part.get_content_type() == "text/calendar"]
    [event] = calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:calendar@share.example.cn"
    assert event["ORGANIZER"].params["SENT-BY"] == "mailto:noreply@share.example.cn"
    assert booking.instrument.lab.name_zh in str(event["ORGANIZER"].params["CN"])


# --- replies through a real IMAP server ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def imap_url():
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot (Debian's dovecot-imapd) is not installed: make system-packages installs it")
    # dovecot's own users (auth, mail) must reach the files: a directory of its own, not pytest's 0700 one.
    tmp_path = Path(tempfile.mkdtemp(prefix="imap-"))
    tmp_path.chmod(0o755)
    port = _free_port()
    owner = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())  # dovecot refuses uid 0
    home = tmp_path / "home"
    for folder in ("run", "state", "home"):
        (tmp_path / folder).mkdir()
    os.chown(home, owner.pw_uid, owner.pw_gid) if os.getuid() == 0 else None
    (tmp_path / "passwd").write_text("replies@share.example.cn:{PLAIN}secret\n")
    config = tmp_path / "dovecot.conf"
    config.write_text(f"""protocols = imap
listen = 127.0.0.1
base_dir = {tmp_path}/run
state_dir = {tmp_path}/state
log_path = {tmp_path}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{home}/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp_path}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={home}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")
    subprocess.run([DOVECOT, "-c", str(config)], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"imap://replies%40share.example.cn:secret@127.0.0.1:{port}/INBOX"
    subprocess.run([DOVECOT, "-c", str(config), "stop"], check=False)
    pid_file = Path(tmp_path / "run" / "master.pid")
    if pid_file.exists():
        subprocess.run(["kill", pid_file.read_text().strip()], check=False)
    shutil.rmtree(tmp_path, ignore_errors=True)


def _reply(booking: Booking, *, partstat: str, attendee: str, sequence: int | None = None) -> bytes:
    """What a calendar client sends back: METHOD:REPLY, the UID, the attendee's PARTSTAT."""
    sequence = booking.sequence if sequence is None else sequence
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mail client//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
            f"UID:{booking.uid}@instrumentshare\r\nSEQUENCE:{sequence}\r\nDTSTAMP:20261202T093000Z\r\n"
            f"ORGANIZER:mailto:calendar@share.example.cn\r\n"
            f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def _deliver(url: str, sender: str, calendar: bytes) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "calendar@share.example.cn", "Declined: booking"
    message.set_content("Declined")
    message.add_alternative(calendar.decode(), subtype="calendar", params={"method": "REPLY"})
    client = imaplib.IMAP4("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))
    client.login("replies@share.example.cn", "secret")
    client.append("INBOX", None, None, message.as_bytes())
    client.logout()


def test_a_decline_read_from_the_mailbox_cancels_the_booking_once(
        imap_url, world, instrument, django_capture_on_commit_callbacks):
    declined = _book(world, instrument, django_capture_on_commit_callbacks, day=1, hour=10)
    accepted = _book(world, instrument, django_capture_on_commit_callbacks, day=2, hour=10)
    spoofed = _book(world, instrument, django_capture_on_commit_callbacks, day=3, hour=10)
    me = world.researcher.email
    _deliver(imap_url, me, _reply(declined, partstat="DECLINED", attendee=me))
    _deliver(imap_url, me, _reply(declined, partstat="DECLINED", attendee=me))  # a client that sends twice
    _deliver(imap_url, me, _reply(accepted, partstat="ACCEPTED", attendee=me))
    _deliver(imap_url, "mallory@evil.example", _reply(spoofed, partstat="DECLINED", attendee=me))
    _deliver(imap_url, me, _reply(spoofed, partstat="DECLINED", attendee=me, sequence=spoofed.sequence - 1))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        outcomes = replies.read_mailbox(imap_url)
    assert [(o.booking_id, o.action, o.why) for o in outcomes] == [
        (declined.pk, "cancelled", ""),
        (declined.pk, "ignored", "older_revision"),  # the cancellation raised its SEQUENCE
        (accepted.pk, "accepted", ""),
        (spoofed.pk, "ignored", "not_the_booker"),
        (spoofed.pk, "ignored", "older_revision"),
    ]
    declined.refresh_from_db()
    assert declined.state == Booking.State.CANCELLED and declined.cancelled_by_id == world.researcher.pk
    assert "iMIP" in declined.reason
    assert AuditEvent.objects.filter(action="booking.cancelled", target_id=str(declined.pk)).count() == 1
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["预约取消 Booking cancelled"]  # the CANCEL, once
    for booking in (accepted, spoofed):
        booking.refresh_from_db()
        assert booking.state == Booking.State.CONFIRMED

    assert replies.read_mailbox(imap_url) == []  # every message was marked read: nothing twice


def test_odd_messages_are_logged_and_change_nothing(world, instrument, django_capture_on_commit_callbacks):
    booking = _book(world, instrument, django_capture_on_commit_callbacks)
    assert replies.handle_message(b"From: a@b.example\r\n\r\nno calendar here") == [
        replies.Outcome(None, "ignored", "no_calendar")]
    assert replies.handle_reply(b"garbage", sender="a@b.example") == [replies.Outcome(None, "ignored", "unreadable")]
    request = _reply(booking, partstat="DECLINED", attendee=world.researcher.email).replace(b"METHOD:REPLY",
                                                                                              b"METHOD:REQUEST")
    assert replies.handle_reply(request, sender=world.researcher.email)[0].why == "not_a_reply"
    booking.refresh_from_db()
    assert booking.state == Booking.State.CONFIRMED
