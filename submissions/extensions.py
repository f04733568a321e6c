"""What apps above submissions contribute to it (see ``instrumentshare.core.extensions``)."""

from instrumentshare.core.extensions import ExtensionPoint

request_parts = ExtensionPoint(
    "submissions.request_parts",
    """A higher app's part of a sample request (billing: the account the work is charged to), the
    counterpart of ``bookings.booking_parts``. A contribution is a class with these static methods:

    - ``prepare(*, user, instrument, extras) -> state``: checks before a new request is saved, inside its
      transaction; ``extras`` holds the fields the higher app adds (billing's ``account_id``); raise a
      ``DomainError`` to refuse.
    - ``save(*, request, state) -> dict``: writes the app's own rows for the new request, in the same
      transaction; the returned fields join the audit record.
    - ``may_decide(*, user, request) -> bool``: whether ``user``, not the requester, may accept or decline
      the request's quote (billing: the PI of the project account, the company's finance).
    - ``facts(requests) -> {request_id: {name: value}}``: what the app knows of each request, in one query
      for the lot (the API's ``account_id``).
    """,
)

completion_parts = ExtensionPoint(
    "submissions.completion_parts",
    """What apps above do when a request completes (usage: the billable items and the service record of way
    ``sample``). A contribution is a class with these static methods, called inside the service's
    transaction with the request locked:

    - ``completed(*, request, now) -> dict``: write the app's rows for the completed request; idempotent (a
      unique key per request); the returned fields join the audit record.
    - ``rated(*, request, now) -> None``: the requester rated the work (``request.rating``).
    """,
)

work_time = ExtensionPoint(
    "submissions.work_time",
    """Instrument time held for a request's work, with the same no-double-booking guarantee as bookings. A
    single contribution, a class with these static methods, called inside the service's transaction:

    - ``hold(*, request, actor, start, end, now) -> dict``: hold [start, end) on the request's instrument or
      raise a ``DomainError`` (409 ``slot_taken`` when the time is taken); replaces an earlier hold of the same
      request; the returned fields join the audit record.
    - ``release(*, request, actor, now) -> None``: free the held time (the request was cancelled or rejected).

    Without a contribution scheduling is refused (``scheduling_unavailable``): time that blocks nothing is
    no schedule.
    """,
    single=True,
)
