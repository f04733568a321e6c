"""The booking state machine, written once: which moves exist, from which states, what each records.

Every path that moves a booking reads this table: the services one booking at a time (approve,
reject, cancel, reschedule) and settlement in bulk (complete, no-show, for a chunk of bookings that
reconciliation hands over). A move records its audit action, sends the outbox message it names, and
may cost the booker credit (``settings.CREDIT_<KIND>_PENALTY``) through one credit function.

    pending ──approve──▶ confirmed ──complete──▶ completed
       │  ╲                 │  ╲
    reject  cancel       cancel  no_show ──▶ no_show
       ▼      ▼             ▼
    rejected  cancelled ◀───┘          (reschedule: pending/confirmed stay, or go back to pending)

    held ──release──▶ cancelled        (time the lab holds for its own work, e.g. a sample request)
"""

from __future__ import annotations

from dataclasses import dataclass

from instrumentshare.core.errors import Conflict

from .models import Booking, Notification

State = Booking.State


@dataclass(frozen=True)
class Move:
    name: str
    sources: frozenset[str]
    target: str | None        # None: the state stays (a reschedule), unless approval is needed again
    action: str               # the audit action
    notify: str | None        # the outbox message it sends (Notification.Kind)
    penalty: str | None       # the credit it may cost (a CreditEvent kind), None for none
    refused: str              # "A {state} booking cannot be ..."
    frees_time: bool = False  # the booking's (old) time may go to a waiting list (bookings.services.waitlist)

    def check(self, booking: Booking) -> None:
        """Refuse a move from a state it does not leave (409 ``invalid_state``)."""
        if booking.state not in self.sources:
            raise Conflict("invalid_state", f"A {booking.state} booking cannot be {self.refused}.")


OPEN = frozenset({State.PENDING, State.CONFIRMED})

MOVES: dict[str, Move] = {move.name: move for move in (
    Move("approve", frozenset({State.PENDING}), State.CONFIRMED, "booking.approved", Notification.Kind.INVITATION,
         None, "approved"),
    Move("reject", frozenset({State.PENDING}), State.REJECTED, "booking.rejected", Notification.Kind.CANCELLATION,
         None, "rejected", frees_time=True),
    Move("cancel", OPEN, State.CANCELLED, "booking.cancelled", Notification.Kind.CANCELLATION, "late_cancel",
         "cancelled", frees_time=True),
    Move("cancel_by_lab", OPEN, State.CANCELLED, "booking.cancelled_by_lab", Notification.Kind.CANCELLATION, None,
         "cancelled", frees_time=True),
    Move("reschedule", OPEN, None, "booking.rescheduled", Notification.Kind.INVITATION, None, "rescheduled",
         frees_time=True),
    Move("complete", frozenset({State.CONFIRMED}), State.COMPLETED, "booking.completed", None, None, "completed"),
    Move("no_show", frozenset({State.CONFIRMED}), State.NO_SHOW, "booking.no_show", None, "no_show", "a no-show"),
    # Time the lab holds for its own work (bookings/services/holds.py): no invitation, no credit, no billing.
    Move("release", frozenset({State.HELD}), State.CANCELLED, "booking.hold_released", None, None, "released",
         frees_time=True),
)}


def settled_audit(move: Move, source: str) -> dict:
    """The audit record of a settlement move: the same whether one booking or a chunk is settled."""
    return {"before": {"state": str(source)}, "after": {"state": str(move.target)}}
