"""The sample request's state machine, written once: which moves exist, from which states, who makes them.

Every service that moves a request reads this table: it locks the row, returns early when the request
is already where the move leads (a move is idempotent), refuses a move from a state it does not leave
(409 ``invalid_state``) or by the wrong side (403), records the audit action and a history row whose
e-mail goes out after commit.

    submitted ─quote─▶ quoted ─accept─▶ accepted ─receive─▶ received ─schedule─▶ scheduled
                         │                                     │                    │
                      decline ─▶ declined                      └──────start─────────┴─▶ in_progress
                                                                                           │
                 completed ◀─complete── delivered ◀────────────deliver──────────────────────┘

    cancel (requester, before the samples arrive; the lab, any time before completion, with a reason)
    reject (the lab, with a reason, before the work starts)
"""

from __future__ import annotations

from dataclasses import dataclass

from instrumentshare.core.errors import Conflict

from .models import SampleRequest

State = SampleRequest.State

LAB, REQUESTER, EITHER = "lab", "requester", "either"


@dataclass(frozen=True)
class Move:
    name: str
    sources: frozenset[str]
    target: str
    by: str                  # LAB, REQUESTER (or whoever decides for the account) or EITHER
    action: str              # the audit action
    needs_reason: bool = False

    def check(self, request: SampleRequest) -> None:
        if request.state not in self.sources:
            raise Conflict("invalid_state", f"A {request.state} request does not allow '{self.name}'.",
                           extra={"state": str(request.state)})


BEFORE_RECEIPT = frozenset({State.SUBMITTED, State.QUOTED, State.ACCEPTED})
BEFORE_WORK = BEFORE_RECEIPT | {State.RECEIVED, State.SCHEDULED}
BEFORE_COMPLETION = BEFORE_WORK | {State.IN_PROGRESS, State.DELIVERED}

MOVES: dict[str, Move] = {move.name: move for move in (
    Move("quote", frozenset({State.SUBMITTED}), State.QUOTED, LAB, "submission.quoted"),
    Move("accept", frozenset({State.QUOTED}), State.ACCEPTED, REQUESTER, "submission.accepted"),
    Move("decline", frozenset({State.QUOTED}), State.DECLINED, REQUESTER, "submission.declined"),
    Move("receive", frozenset({State.ACCEPTED}), State.RECEIVED, LAB, "submission.received"),
    Move("schedule", frozenset({State.RECEIVED}), State.SCHEDULED, LAB, "submission.scheduled"),
    Move("start", frozenset({State.RECEIVED, State.SCHEDULED}), State.IN_PROGRESS, LAB, "submission.started"),
    Move("deliver", frozenset({State.IN_PROGRESS}), State.DELIVERED, LAB, "submission.delivered"),
    Move("complete", frozenset({State.DELIVERED}), State.COMPLETED, EITHER, "submission.completed"),
    Move("cancel", BEFORE_RECEIPT, State.CANCELLED, REQUESTER, "submission.cancelled"),
    Move("cancel_by_lab", BEFORE_COMPLETION, State.CANCELLED, LAB, "submission.cancelled_by_lab", needs_reason=True),
    Move("reject", BEFORE_WORK, State.REJECTED, LAB, "submission.rejected", needs_reason=True),
)}
