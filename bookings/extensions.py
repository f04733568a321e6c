"""What apps above bookings contribute to it (see ``instrumentshare.core.extensions``)."""

from instrumentshare.core.extensions import ExtensionPoint

booking_parts = ExtensionPoint(
    "bookings.booking_parts",
    """A higher app's part of a booking (billing: the account the booking is charged to). A contribution
    is a class with these static methods, each called by the booking services:

    - ``form_fields(*, user, instrument) -> dict[str, django.forms.Field]``: fields the app adds to the
      booking form; their cleaned values reach ``prepare`` in ``extras`` (the API passes its own fields).
    - ``prepare(*, user, instrument, start, extras) -> state``: checks before a new booking is saved, inside
      its transaction with the instrument locked; raise a ``DomainError`` to refuse.
    - ``save(*, booking, state)``: writes the app's own rows for the new booking, in the same transaction.
    - ``check_move(*, booking, start)``: checks a move of the booking to ``start``; raise to refuse.
    - ``estimate(*, user, instrument, start, end) -> dict | None`` (optional): what a booking of that time
      would cost (billing: ``amount``, ``currency``, ``to_pay`` after a voucher share, the rule's parts);
      shown on the booking form and answered by ``GET /bookings/estimate``.
    - ``facts(bookings) -> {booking_id: {name: value}}``: what the app knows of each booking, in one
      query for the lot (the API shows ``account_id``; pages show ``label``/``value`` pairs).
    - ``new_facts(*, booking, state) -> dict`` (optional): ``facts`` of a booking ``save`` just wrote, from
      its ``state``, so a new booking is answered without reading it back.
    """,
)

booking_page_panels = ExtensionPoint(
    "bookings.booking_page_panels",
    "(request, booking, *, is_booker: bool, is_lab: bool, now: datetime) -> str: an HTML section for the "
    "booking's page, or '' (usage: check in and out, and the sessions recorded).",
)
