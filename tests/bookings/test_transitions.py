"""The booking state machine is one table (bookings.transitions): every service follows it, one booking
at a time or in bulk, and a move records the same audit whichever path made it."""

import datetime as dt

import pytest

from bookings import services
from bookings.models import Booking
from bookings.transitions import MOVES
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Conflict, NotFound
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.django_db

STATES = [state.value for state in Booking.State]


def _booking_in(world, instrument, state: str, index: int) -> Booking:
    """A booking of the researcher's in ``state`` (the instrument asks for approval: it starts pending),
    each ``index`` in a slot of its own with a free hour after it."""
    start = next_weekday(1 + index // 3, 8 + 3 * (index % 3))
    if state == "held":   # the lab's own time (a sample request's work), not a booking of the researcher's
        return services.hold_time(actor=world.manager, instrument_id=instrument.pk, start=start,
                                  end=start + dt.timedelta(hours=1), purpose="sample work")
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="x")
    if state == "rejected":
        services.reject_booking(actor=world.manager, booking_id=booking.pk, reason="no")
    elif state != "pending":
        services.approve_booking(actor=world.manager, booking_id=booking.pk)
        if state == "cancelled":
            services.cancel_booking(actor=world.researcher, booking_id=booking.pk)
        elif state in ("completed", "no_show"):   # states only settlement reaches, after the booking
            services.settle(completed=[booking.pk] if state == "completed" else [],
                            no_shows=[(booking.pk, world.researcher.pk)] if state == "no_show" else [],
                            now=booking.end + dt.timedelta(hours=1))
    booking.refresh_from_db()
    assert booking.state == state
    return booking


ACTIONS = {
    "approve": lambda world, b, now: services.approve_booking(actor=world.manager, booking_id=b.pk, now=now),
    "reject": lambda world, b, now: services.reject_booking(actor=world.manager, booking_id=b.pk, reason="r", now=now),
    "cancel": lambda world, b, now: services.cancel_booking(actor=world.researcher, booking_id=b.pk, now=now),
    "cancel_by_lab": lambda world, b, now: services.cancel_booking(actor=world.manager, booking_id=b.pk,
                                                                    reason="maintenance", now=now),
    "reschedule": lambda world, b, now: services.reschedule_booking(
        actor=world.researcher, booking_id=b.pk, start=b.start + dt.timedelta(hours=1),
        end=b.end + dt.timedelta(hours=1), now=now),
    "release": lambda world, b, now: services.release_hold(actor=world.manager, booking_id=b.pk, now=now),
}
# The researcher's own moves cannot reach the lab's held time at all: it is not theirs to see.
BY_RESEARCHER = {"cancel", "reschedule"}


@pytest.mark.parametrize("name", list(ACTIONS))
def test_each_service_moves_exactly_from_the_states_the_table_names(world, name):
    move = MOVES[name]
    instrument = make_instrument(world, name=f"状态{name}", policy={"approval": "all"})
    for index, state in enumerate(STATES):
        booking = _booking_in(world, instrument, state, index)
        now = booking.start - dt.timedelta(days=2)
        before = AuditEvent.objects.filter(action=move.action, target_id=str(booking.pk)).count()
        if state in move.sources:
            moved = ACTIONS[name](world, booking, now)
            assert moved.state == (move.target or moved.state) and moved.state in (move.target, "pending", state)
            assert AuditEvent.objects.filter(action=move.action, target_id=str(booking.pk)).count() == before + 1
        elif state == move.target:   # asked twice: nothing more happens
            assert ACTIONS[name](world, booking, now).state == state
            assert AuditEvent.objects.filter(action=move.action, target_id=str(booking.pk)).count() == before
        elif state == "held" and name in BY_RESEARCHER:
            with pytest.raises(NotFound):
                ACTIONS[name](world, booking, now)
        else:
            with pytest.raises(Conflict) as refused:
                ACTIONS[name](world, booking, now)
            assert refused.value.code == "invalid_state"


def test_a_no_show_settled_alone_or_in_a_chunk_records_the_same_audit(world):
    instrument = make_instrument(world, name="结算", policy={"approval": "all"})
    one, two, three = (_booking_in(world, instrument, "confirmed", index) for index in range(3))
    later = three.end + dt.timedelta(hours=1)
    services.settle(completed=[], no_shows=[(one.pk, world.researcher.pk)], now=later)
    services.settle(completed=[], no_shows=[(two.pk, world.researcher.pk), (three.pk, world.researcher.pk)],
                    now=later)
    moved = [(e.before, e.after) for e in AuditEvent.objects.filter(action="booking.no_show").order_by("id")]
    assert moved == [({"state": "confirmed"}, {"state": "no_show"})] * 3
    credit = [e.after for e in AuditEvent.objects.filter(action="credit.no_show").order_by("id")]
    assert credit == [{"booking_ids": [one.pk], "delta": -10}, {"booking_ids": [two.pk, three.pk], "delta": -20}]
    assert services.credit_score(world.researcher) == 70
