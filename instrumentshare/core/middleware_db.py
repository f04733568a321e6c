"""A database that went away (restart, failover) is a 503 the client may retry, never a 500."""

import logging

from django.db import OperationalError, connections
from django.http import JsonResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError):
            return None
        logger.warning("database unavailable: %s", exception)
        for connection in connections.all():
            connection.close_if_unusable_or_obsolete()
        if request.path.startswith("/api/"):
            response = JsonResponse({"code": "unavailable", "detail": "The database is unavailable; retry shortly."},
                                    status=503)
        else:
            response = render(request, "core/error.html", {"status": 503, "message": "unavailable"}, status=503)
        response["Retry-After"] = "2"
        return response
