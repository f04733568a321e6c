"""Every write of the bookings app. The public services, one import away (``from bookings import services``):

- ``lifecycle``: create, approve, reject, cancel, reschedule one booking (``bookings.transitions``);
- ``series``: recurring bookings, checked and booked as a whole, cancelled one, from one on, or all;
- ``settlement``: ended bookings to completed or no-show, in bulk (reconciliation calls it);
- ``credit``: the booking credit, its penalties and the bureau's lifting of a ban;
- ``feeds``: the secret links of calendar feeds;
- ``notifications``: sending the outbox (invitations, cancellations, reminders, waiting-list offers);
- ``waitlist``: waiting lists: join, leave, offers of freed time, accept, decline, expiry.
"""

from .credit import credit_score, lift_ban, penalize
from .feeds import create_feed_token, revoke_feed_token
from .holds import hold_time, release_hold
from .lifecycle import (
    approve_booking,
    can_see_booking,
    cancel_booking,
    create_booking,
    reject_booking,
    reschedule_booking,
)
from .series import can_see_series, cancel_series, create_series
from .settlement import settle, settle_ended
from .waitlist import accept_offer, decline_offer, join_waitlist, leave_waitlist, process_waitlists

__all__ = [
    "hold_time", "release_hold", "cancel_series", "can_see_series", "create_series",
    "accept_offer", "decline_offer", "join_waitlist", "leave_waitlist", "process_waitlists",
    "approve_booking", "can_see_booking", "cancel_booking", "create_booking", "create_feed_token", "credit_score",
    "lift_ban", "penalize", "reject_booking", "reschedule_booking", "revoke_feed_token", "settle",
    "settle_ended",
]
