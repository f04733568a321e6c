"""iCalendar: invitations (METHOD:REQUEST / CANCEL) and feeds, built with the icalendar library."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event, vCalAddress, vText

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


def _calendar(method: str | None = None, name: str | None = None) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method)
    if name:
        calendar.add("x-wr-calname", name)
    return calendar


def uid_of(booking: Booking) -> str:
    return f"{booking.uid}@instrumentshare"


def summary_of(booking: Booking) -> str:
    instrument = booking.instrument
    english = instrument.name_en or instrument.name_zh
    return f"仪器预约 Instrument booking: {instrument.name_zh} / {english}"


def location_of(booking: Booking) -> str:
    instrument = booking.instrument
    return " ".join(part for part in (instrument.address, instrument.room) if part) or instrument.lab.name_zh


def _organizer(booking: Booking) -> vCalAddress:
    lab = booking.instrument.lab
    email = lab.contact_email or settings.DEFAULT_FROM_EMAIL.split("<")[-1].rstrip(">")
    organizer = vCalAddress(f"mailto:{email}")
    organizer.params["cn"] = vText(lab.name_zh if not lab.name_en else f"{lab.name_zh} / {lab.name_en}")
    return organizer


def _attendee(booking: Booking) -> vCalAddress:
    attendee = vCalAddress(f"mailto:{booking.user.email}")
    attendee.params["cn"] = vText(booking.user.display_name)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("ACCEPTED" if booking.state == Booking.State.CONFIRMED else "NEEDS-ACTION")
    return attendee


def booking_event(booking: Booking, *, cancelled: bool = False, private: bool = True) -> Event:
    event = Event()
    event.add("uid", uid_of(booking))
    event.add("sequence", booking.sequence)
    event.add("dtstamp", timezone.now().astimezone(dt.UTC))
    event.add("dtstart", booking.start.astimezone(dt.UTC))
    event.add("dtend", booking.end.astimezone(dt.UTC))
    event.add("last-modified", booking.updated_at.astimezone(dt.UTC))
    event.add("status", "CANCELLED" if cancelled else STATUS[booking.state])
    if private:
        event.add("summary", summary_of(booking))
        event.add("location", location_of(booking))
        event.add("description", f"{booking.purpose}\n{settings.SITE_URL}/bookings/{booking.pk}/")
        event.add("organizer", _organizer(booking))
        event.add("attendee", _attendee(booking))
        event.add("url", f"{settings.SITE_URL}/bookings/{booking.pk}/")
    else:
        event.add("summary", "已预约 Booked")
        event.add("transp", "OPAQUE")
    return event


def invitation(booking: Booking, method: str) -> bytes:
    """One booking as an iTIP message: METHOD:REQUEST for new/changed, METHOD:CANCEL otherwise."""
    calendar = _calendar(method)
    calendar.add_component(booking_event(booking, cancelled=method == "CANCEL"))
    return calendar.to_ical()


def feed(bookings: Iterable[Booking], *, name: str, private: bool = True) -> bytes:
    calendar = _calendar(name=name)
    calendar.add("refresh-interval", dt.timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT15M")
    for booking in bookings:
        calendar.add_component(booking_event(booking, private=private))
    return calendar.to_ical()
