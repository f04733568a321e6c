"""Oversight settings, each read as ``getattr(settings, NAME, default)`` so a city can set its own.

Money thresholds are CNY, hours are machine hours per instrument per year.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.conf import settings

DEFAULTS = {
    # The yearly machine hours an instrument is expected to run, by purpose (utilization = hours ÷ quota).
    "OVERSIGHT_ANNUAL_QUOTA_HOURS": {"general": 1400, "special": 800},
    # Below this utilization an instrument counts as idle on the dashboard.
    "OVERSIGHT_IDLE_UTILIZATION": Decimal("0.20"),
    # Annual evaluation: indicator weights (any positive numbers; the score is their weighted mean)…
    "OVERSIGHT_EVALUATION_WEIGHTS": {
        "open_rate": 20, "run_hours": 20, "shared_hours": 20,
        "external_results": 15, "user_ratings": 15, "online_platform": 10,
    },
    # …the figures that earn a full indicator score…
    "OVERSIGHT_EVALUATION_TARGETS": {"share_rate": Decimal("0.30"), "external_services_per_instrument": 20},
    # …and the lowest score of each grade (below "pass" is "poor").
    "OVERSIGHT_GRADE_THRESHOLDS": {"excellent": 90, "good": 75, "pass": 60},
    # The evaluation workbook lists instruments valued from this much.
    "OVERSIGHT_REPORT_INSTRUMENT_VALUE": Decimal("500000"),
    # Duplicate-purchase check: needed from this purchase value; a category is saturated when its
    # instruments already run at least this many hours a year on average.
    "OVERSIGHT_PURCHASE_CHECK_VALUE": Decimal("500000"),
    "OVERSIGHT_SATURATION_HOURS": 1200,
    # National platform export: where the local transport writes, which transport, and how many days
    # after a quarter ends the periodic task exports it (late usage and ratings still come in).
    "OVERSIGHT_EXPORT_DIR": None,  # None: VAR_DIR / "exports"
    "OVERSIGHT_EXPORT_TRANSPORT": "oversight.national.LocalFileTransport",
    "OVERSIGHT_EXPORT_DELAY_DAYS": 10,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])


def export_dir() -> Path:
    configured = setting("OVERSIGHT_EXPORT_DIR")
    return Path(configured) if configured else Path(settings.VAR_DIR) / "exports"


def quota_hours(purpose: str) -> int:
    quotas = setting("OVERSIGHT_ANNUAL_QUOTA_HOURS")
    return int(quotas.get(purpose, quotas.get("general", 1400)))
