"""A dependency that went away (the database restarting or failing over, Redis down where it is
really needed) is a 503 the client may retry, with Retry-After, never a 500.

Where a dependency is not really needed the code degrades instead: the rate limiter counts per
process without Redis (``accounts.auth``), a task that cannot be queued is sent by the outbox sweep.
"""

import logging

from django.db import OperationalError, connections
from django.http import JsonResponse
from django.shortcuts import render

from .dependencies import RedisError

logger = logging.getLogger(__name__)

UNAVAILABLE = {
    OperationalError: "The database is unavailable; retry shortly.",
    RedisError: "A service the request needs is unavailable; retry shortly.",
}


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        detail = next((text for kind, text in UNAVAILABLE.items() if isinstance(exception, kind)), None)
        if detail is None:
            return None
        logger.warning("dependency unavailable: %s", exception)
        if isinstance(exception, OperationalError):
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()
        if request.path.startswith("/api/"):
            response = JsonResponse({"code": "unavailable", "detail": detail}, status=503)
        else:
            response = render(request, "core/error.html", {"status": 503, "message": "unavailable"}, status=503)
        response["Retry-After"] = "2"
        return response
