"""Booking forms. Times are typed as wall-clock times where the instrument stands, whoever is looking."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from instrumentshare.core.errors import DomainError
from instrumentshare.core.time import BoundedDateField, BoundedDateTimeField

from .extensions import booking_parts

LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


def wall_clock(value: str | None, zone) -> dt.datetime | None:
    """A query-string time as a naive wall-clock time in ``zone`` (None when it does not parse)."""
    text = (value or "").strip()
    if "T" in text:
        text = text.replace(" ", "+")  # an offset's "+" that arrived unescaped in the query string
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(zone)
    return parsed.replace(tzinfo=None, second=0, microsecond=0)


class BookingTimesForm(forms.Form):
    start = BoundedDateTimeField(label=_("Start"), widget=LocalDateTimeInput(), input_formats=LOCAL_FORMATS)
    end = BoundedDateTimeField(label=_("End"), widget=LocalDateTimeInput(), input_formats=LOCAL_FORMATS)

    def __init__(self, *args, instrument, **kwargs):
        initial = dict(kwargs.pop("initial", None) or {})
        for name in ("start", "end"):
            # Naive initial values are shown as they are: already wall-clock times of the instrument.
            if isinstance(initial.get(name), dt.datetime) and timezone.is_aware(initial[name]):
                initial[name] = initial[name].astimezone(instrument.zone).replace(tzinfo=None)
        super().__init__(*args, initial=initial, **kwargs)
        self.instrument = instrument
        help_text = _("Local time at the instrument (%(zone)s).") % {"zone": instrument.time_zone}
        for name in ("start", "end"):
            self.fields[name].widget.attrs["step"] = instrument.policy.slot_minutes * 60
            self.fields[name].help_text = help_text

    def full_clean(self):
        # Read the inputs in the instrument's zone, not the server's or the viewer's: a time that
        # does not exist there (a DST gap) or exists twice is refused by Django with a clear error.
        with timezone.override(self.instrument.zone):
            super().full_clean()


WEEKDAY_CHOICES = [("MO", _("Mon")), ("TU", _("Tue")), ("WE", _("Wed")), ("TH", _("Thu")), ("FR", _("Fri")),
                   ("SA", _("Sat")), ("SU", _("Sun"))]


class BookingForm(BookingTimesForm):
    # The "repeat" part: a series of bookings (RFC 5545 rule) whose first occurrence is start-end above.
    repeat = forms.ChoiceField(label=_("Repeat"), required=False,
                               choices=[("", _("Does not repeat")), ("WEEKLY", _("Weekly")), ("DAILY", _("Daily"))])
    interval = forms.IntegerField(label=_("Every (weeks or days)"), min_value=1, max_value=52, initial=1,
                                  required=False)
    weekdays = forms.MultipleChoiceField(label=_("On"), choices=WEEKDAY_CHOICES, required=False,
                                         widget=forms.CheckboxSelectMultiple,
                                         help_text=_("Weekly only; the first booking's day is one of them."))
    count = forms.IntegerField(label=_("Times"), min_value=1, max_value=100, required=False,
                               help_text=_("How many bookings in all, or give the last day instead."))
    until = BoundedDateField(label=_("Until (last day)"), required=False,
                             widget=forms.DateInput(attrs={"type": "date"}))
    purpose = forms.CharField(label=_("Purpose"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text=_("What you will measure or do, for the lab and the usage report."))
    lab = forms.ModelChoiceField(label=_("Lab to charge"), queryset=None, required=False, empty_label=None)

    def __init__(self, *args, labs, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = labs
        if labs.exists():
            self.fields["lab"].required = True
        else:
            del self.fields["lab"]  # an external person without a lab: billed to their organization
        # Fields higher apps add (billing: the account to charge); their values go to the service as extras.
        self.part_fields = []
        for part in booking_parts.contributions:
            for name, field in part.form_fields(user=user, instrument=self.instrument).items():
                self.fields[name] = field
                self.part_fields.append(name)

    @property
    def part_bound_fields(self) -> list:
        return [self[name] for name in self.part_fields]

    def extras(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in self.part_fields}

    @property
    def repeat_bound_fields(self) -> list:
        return [self[name] for name in ("interval", "weekdays", "count", "until")]

    def clean(self):
        data = super().clean()
        if data.get("repeat"):
            if data.get("count") is None and data.get("until") is None:
                self.add_error("count", gettext("Say how many times, or until which day."))
            elif data.get("count") is not None and data.get("until") is not None:
                self.add_error("until", gettext("Give either the number of times or the last day, not both."))
        return data

    def series_rule(self) -> dict:
        data = self.cleaned_data
        weekly = data["repeat"] == "WEEKLY"
        return {"frequency": data["repeat"], "interval": data.get("interval") or 1,
                "weekdays": (data.get("weekdays") or []) if weekly else [], "count": data.get("count"),
                "until": data.get("until")}


class WaitlistForm(BookingTimesForm):
    """Join a waiting list: for the slot [start, end), or for any ``minutes`` inside it."""

    minutes = forms.IntegerField(label=_("Length in minutes"), required=False, min_value=1, max_value=20160,
                                 help_text=_("Leave empty to wait for exactly this time; give a length to take any "
                                             "free time that long between start and end."))
    purpose = forms.CharField(label=_("Purpose"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    lab = forms.ModelChoiceField(label=_("Lab to charge"), queryset=None, required=False, empty_label=None)

    def __init__(self, *args, labs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = labs
        if labs.exists():
            self.fields["lab"].required = True
        else:
            del self.fields["lab"]


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=2000, required=False,
                             widget=forms.Textarea(attrs={"rows": 2}))


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason for the booker"), max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))


# --- the services' rule errors, said in the page's language ---------------------------------------

RULE_MESSAGES = {
    "closed": _("The instrument is not open for the whole of that time. Pick a time inside the free (green) "
                "slots of the calendar."),
    "downtime": _("The instrument is out of service at that time."),
    "too_short": _("Bookings last at least %(min_minutes)s minutes."),
    "too_long": _("Bookings last at most %(max_minutes)s minutes."),
    "off_grid": _("Start and end must fall on the %(slot_minutes)s-minute grid of the instrument's time zone "
                  "(%(zone)s)."),
    "too_soon": _("Book at least %(notice_minutes)s minutes ahead."),
    "beyond_horizon": _("Bookings open at most %(horizon_days)s days ahead."),
    "invalid_range": _("The booking must end after it starts."),
    "purpose_required": _("Say what the booking is for."),
    "quota_exceeded": _("This booking would go over the weekly booking quota of this instrument."),
    "credit_too_low": _("Your booking credit is too low to book. Ask the platform administrator to lift the ban."),
    "not_qualified": _("You need training on this instrument before you can book it."),
    "not_published": _("This instrument is not open for booking yet."),
    "out_of_service": _("This instrument is out of service."),
    "internal_only": _("This instrument is shared only inside its organization."),
    "not_shared": _("This instrument is not shared."),
    "samples_only": _("This instrument takes sample submissions only, not time bookings."),
    "account_not_allowed": _("You may only charge a lab you belong to."),
    "reason_required": _("Please give a reason."),
    "invalid_state": _("This booking cannot be changed in its current state."),
    "already_started": _("A booking that has started can no longer be moved or cancelled."),
    "not_authenticated": _("Log in to book."),
    "time_free": _("That time is free now: book it instead of waiting."),
    "already_waiting": _("You are already on the waiting list for that time."),
    "waitlist_limit": _("You are waiting for as many times as you may at once: leave one first."),
    "window_too_long": _("Wait for a shorter stretch of time (two weeks at most)."),
    "invalid_minutes": _("The length must fit between start and end."),
    "no_offer": _("There is no open offer on this entry."),
    "offer_expired": _("This offer is no longer open: the time went to the next person in line."),
    "already_sent": _("This e-mail has already gone out."),
    # a repeating series
    "too_many_occurrences": _("A repeating booking has at most 100 occurrences: end it sooner."),
    "count_or_until": _("Say how many times, or until which day."),
    "first_not_in_rule": _("The first booking must fall on one of the chosen weekdays."),
    "until_before_start": _("The last day is before the first booking."),
    "invalid_weekdays": _("Weekdays go with a weekly repeat only."),
    "series_conflicts": _("Some of these dates cannot be booked; nothing was booked."),
}


def _format_moment(value: str, zone) -> str:
    try:
        return dt.datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return "?"


def rule_message(error: DomainError, instrument=None) -> str:
    """The translated sentence for a service's refusal; the service's own (English) detail when
    the code is not one this page knows."""
    if error.code == "slot_taken":
        conflict = error.extra.get("conflict") or {}
        if instrument is not None and conflict.get("own_booking_id"):
            return gettext("You already have a booking at that time: #%(number)s, %(start)s – %(end)s. "
                           "Move that one, or pick another free time.") % {
                "number": conflict["own_booking_id"],
                "start": _format_moment(conflict.get("start"), instrument.zone),
                "end": _format_moment(conflict.get("end"), instrument.zone)}
        if instrument is not None and conflict:
            return gettext("Sorry, that time was just taken: %(start)s – %(end)s is already booked. "
                           "Pick another free time on the calendar.") % {
                "start": _format_moment(conflict.get("start"), instrument.zone),
                "end": _format_moment(conflict.get("end"), instrument.zone)}
        return gettext("Sorry, that time was just taken. Pick another free time on the calendar.")
    return code_message(error.code, instrument) or error.detail


def code_message(code: str, instrument=None) -> str:
    """The translated sentence for a rule's code ("" when there is none, or it needs the instrument)."""
    message = RULE_MESSAGES.get(code)
    if message is None:
        return ""
    if instrument is None:
        return "" if "%(" in str(message) else str(message)
    policy = instrument.policy
    return str(message) % {
        "min_minutes": policy.min_minutes, "max_minutes": policy.max_minutes, "slot_minutes": policy.slot_minutes,
        "notice_minutes": policy.min_notice_minutes, "horizon_days": policy.horizon_days,
        "zone": instrument.time_zone,
    }
