"""The bureau's dashboard for a city year (issue 8: ≤ 500 ms). Reported as pending until oversight has one."""

from __future__ import annotations

from .harness import Context, Result, pending

FIGURE = "bureau dashboard, one city year"


def run(ctx: Context) -> list[Result]:
    try:
        from oversight import queries  # noqa: F401
    except ImportError:
        return [pending(FIGURE, "≤ 500 ms", "oversight has no dashboard yet")]
    dashboard = getattr(queries, "dashboard", None)
    if dashboard is None:
        return [pending(FIGURE, "≤ 500 ms", "oversight.queries has no dashboard() yet")]
    return [pending(FIGURE, "≤ 500 ms", "oversight.queries.dashboard exists: add its benchmark here")]
