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
