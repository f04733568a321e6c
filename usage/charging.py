"""The billable quantity of a service under the instrument's charge mode. Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    unit: str  # hour (quantity in minutes), sample, use
    quantity: int


def round_up(minutes: int, unit: int) -> int:
    unit = max(unit, 1)
    return int(math.ceil(minutes / unit) * unit)


def timed(minutes: int, *, min_charge_minutes: int, rounding_minutes: int) -> int:
    if minutes <= 0:
        return 0
    return round_up(max(minutes, min_charge_minutes), rounding_minutes)


def billable_quantity(*, charge_mode: str, kind: str, booked_minutes: int, used_minutes: int, samples: int,
                      min_charge_minutes: int, rounding_minutes: int, no_show_percent: int,
                      late_cancel_percent: int) -> Quantity:
    """What may be charged for one booking (or unbooked session).

    - booking: booked time, used time, the longer of the two, per sample or per use;
    - no_show / late_cancel: the configured share of the booked time (for per-sample and per-use
      instruments the share of one use, rounded up: 0% charges nothing);
    - unbooked: like a booking whose booked time is zero.
    The minimum charge and the rounding unit apply to time; counts are whole.
    """
    rules = {"min_charge_minutes": min_charge_minutes, "rounding_minutes": rounding_minutes}
    if kind in ("no_show", "late_cancel"):
        percent = no_show_percent if kind == "no_show" else late_cancel_percent
        if charge_mode in ("per_sample", "per_use"):
            return Quantity("use", 1 if percent > 0 else 0)
        share = booked_minutes * percent // 100
        return Quantity("hour", timed(share, **rules) if percent else 0)
    if charge_mode == "per_sample":
        return Quantity("sample", samples)
    if charge_mode == "per_use":
        return Quantity("use", 1 if used_minutes > 0 or kind == "booking" else 0)
    minutes = {"booked": booked_minutes, "used": used_minutes, "longer": max(booked_minutes, used_minutes)}[
        charge_mode]
    if kind == "unbooked":
        minutes = used_minutes
    return Quantity("hour", timed(minutes, **rules))
