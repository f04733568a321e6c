"""The API's routes are tried in an order chosen for speed (the bookings' first, the API before the
pages). That is only safe while no path can be taken by another route: each operation's path, with
sample values in its parameters, must resolve to that same path's pattern."""

from __future__ import annotations

import re

from django.urls import resolve

from instrumentshare.api import api

PARAMETER = re.compile(r"\{(?:[^}:]+:)?([^}]+)\}")
CONVERTED = re.compile(r"<(?:[^>:]+:)?([^>]+)>")


def _operation_paths() -> list[str]:
    paths = []
    for prefix, router in api._routers:
        for path in router.path_operations:
            paths.append("/".join(part.strip("/") for part in ("api/v1", prefix, path) if part.strip("/")))
    return paths


def test_every_api_path_is_taken_by_its_own_route():
    paths = _operation_paths()
    assert len(paths) > 100
    taken_elsewhere = []
    for path in paths:
        sample = "/" + PARAMETER.sub("1", path) + ("/" if path.endswith("/") else "")
        match = resolve(sample)
        if CONVERTED.sub(r"{\1}", match.route).strip("/") != PARAMETER.sub(r"{\1}", path).strip("/"):
            taken_elsewhere.append((path, match.route))
    assert taken_elsewhere == []


def test_the_api_is_tried_first_and_the_bookings_first_within_it():
    from instrumentshare import urls

    assert str(urls.urlpatterns[0].pattern) == "api/v1/"
    from bookings.api import router as bookings_router

    assert api._routers[1][1] is bookings_router   # after ninja's own default router
