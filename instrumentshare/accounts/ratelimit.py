"""Per-user request budgets for pages, on the same counters as the API's throttles.

The API routes take ``throttle=[UserRateThrottle("RATE_LIMIT_…")]`` (django-ninja); pages take
``@rate_limit("RATE_LIMIT_…")``. Both count in the cache under the same key per setting and user, so
a user who downloads through the API and the pages has one budget, not two. Beyond it: 429 with
``Retry-After``, as JSON under /api/ and as a page elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .auth import UserRateThrottle


def export_throttle() -> list[UserRateThrottle]:
    """The ``throttle=`` of every API route that produces a file (CSV, XLSX, PDF, a JSON download)."""
    return [UserRateThrottle("RATE_LIMIT_EXPORTS")]


def too_many_requests(request: HttpRequest, retry_after: int) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse({"code": "rate_limited", "detail": f"Too many requests: retry in {retry_after} "
                                 "seconds.", "retry_after": retry_after}, status=429)
    else:
        response = render(request, "core/error.html", {"status": 429, "retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def rate_limit(setting_name: str, *, methods: tuple[str, ...] | None = None) -> Callable:
    """Counts each request (of ``methods``, default all) against the user's budget ``setting_name``.

    Put it below ``@login_required``, so anonymous visitors are sent to the login page first.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if methods is None or request.method in methods:
                throttle = UserRateThrottle(setting_name)  # one per request: it holds the request's history
                if not throttle.allow_request(request):
                    return too_many_requests(request, max(1, math.ceil(throttle.wait() or throttle.duration)))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
