"""Demo: compute the sharing statistics for the demo city, so the bureau's dashboard has something to show."""

from __future__ import annotations

from . import services, stats


def seed(stdout=None) -> dict:
    years = sorted(set(stats.years_with_records()) | set(services.years_to_refresh()))
    summaries = [services.refresh_statistics(year=year) for year in years]
    if stdout:
        stdout.write("oversight statistics: " + ", ".join(
            f"{s.year} ({s.instruments} instruments, {s.month_rows} instrument-months)" for s in summaries))
    return {s.year: s.month_rows for s in summaries}
