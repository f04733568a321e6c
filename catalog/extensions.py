"""What apps above the catalog contribute to it (see ``instrumentshare.core.extensions``)."""

from instrumentshare.core.extensions import ExtensionPoint

free_instruments = ExtensionPoint(
    "catalog.free_instruments",
    "(instruments: QuerySet, start: datetime, end: datetime, minutes: int) -> ids or a values QuerySet of the "
    "instruments with ``minutes`` of contiguous free time in [start, end). Bookings knows when an instrument is "
    "free; the search narrows by it.",
    single=True,
)

published_fees = ExtensionPoint(
    "catalog.published_fees",
    "(instrument) -> str: the fee standard from the rate card valid today, in the current language, or '' when "
    "there is none (the instrument's own fee text is shown then). Billing owns the rate cards.",
    single=True,
)

booking_changes = ExtensionPoint(
    "catalog.booking_changes",
    """What a change to an instrument (downtime, opening hours and exceptions, booking rules, unpublishing, a
    revoked qualification) does to its bookings (bookings contributes; see ``catalog.impact``). A class with
    these static methods, called inside the change's transaction after the change is written:

    - ``affected(*, instrument, now, user_id=None) -> list[catalog.impact.AffectedBooking]``: the open
      (pending or confirmed) bookings that have not started and that the instrument's rules as they now stand
      would refuse (closed, down, not bookable, the booker not qualified, too long or short), in one query of
      the bookings; only ``user_id``'s when given.
    - ``settle(*, actor, affected, decision, notice, now) -> None``: ``"cancel"`` cancels each by the lab
      with ``notice`` as the reason (a CANCEL invitation, no credit penalty, no charge, the booker offered
      free slots to rebook); ``"keep"`` leaves each as it is, flagged with ``notice`` for the booker.
    """,
    single=True,
)

windows_refreshed = ExtensionPoint(
    "catalog.windows_refreshed",
    "(*, now: datetime) -> None: called after the daily refresh has rewritten every instrument's opening windows "
    "(``catalog.tasks.refresh_opening_windows_task``), which makes what was derived from them stale. Bookings "
    "computes its stored days of availability again at once, instead of at the next hourly run.",
)
