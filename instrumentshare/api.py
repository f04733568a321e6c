"""The JSON API root: /api/v1/. Each app mounts its own Router here; errors are mapped once."""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, OperationalError
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from instrumentshare.accounts.auth import API_AUTH
from instrumentshare.core.errors import DomainError

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="InstrumentShare API",
    version="1",
    description=(
        "Shared use of publicly funded large scientific instruments. Authenticate with "
        "`Authorization: Bearer <token>` (get one from `POST /api/v1/auth/token`) or with the "
        "browser session plus the `X-CSRFToken` header. Errors are `{\"code\": ..., \"detail\": ...}`."
    ),
    auth=API_AUTH,
    urls_namespace="api",
    docs_url="/docs",
)


def error_response(request, status: int, code: str, detail, **extra):
    return api.create_response(request, {"code": code, "detail": detail, **extra}, status=status)


@api.exception_handler(DomainError)
def on_domain_error(request, exc: DomainError):
    response = error_response(request, exc.status, exc.code, exc.detail, **exc.extra)
    if exc.status == 429 and "retry_after" in exc.extra:
        response["Retry-After"] = str(exc.extra["retry_after"])
    return response


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    errors = []
    for error in exc.errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        errors.append({"field": location, "message": error.get("msg", "invalid"), "type": error.get("type", "")})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "Invalid input."
    return error_response(request, 422, "invalid", detail, errors=errors)


@api.exception_handler(AuthenticationError)
def on_authentication_error(request, exc):
    return error_response(request, 401, "not_authenticated", "Log in or send a valid Bearer token.")


@api.exception_handler(Throttled)
def on_throttled(request, exc: Throttled):
    retry_after = max(1, math.ceil(exc.wait)) if exc.wait else None
    if retry_after is None:
        return error_response(request, 429, "rate_limited", "Too many requests; retry later.")
    response = error_response(request, 429, "rate_limited", f"Too many requests: retry in {retry_after} seconds.",
                              retry_after=retry_after)
    response["Retry-After"] = str(retry_after)
    return response


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    codes = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found", 405: "not_allowed"}
    return error_response(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


@api.exception_handler(RequestDataTooBig)
def on_request_too_big(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2**20
    return error_response(request, 413, "too_large", f"The request body is larger than {limit} MB.")


@api.exception_handler(SuspiciousOperation)
def on_suspicious_request(request, exc):
    # Too many fields, a malformed multipart body and the like: the client's fault, said in JSON.
    return error_response(request, 400, "bad_request", "The request is malformed.")


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return error_response(request, 404, "not_found", "Not found.")


@api.exception_handler(PermissionDenied)
def on_permission_denied(request, exc):
    return error_response(request, 403, "forbidden", str(exc) or "Not allowed.")


@api.exception_handler(DjangoValidationError)
def on_django_validation_error(request, exc: DjangoValidationError):
    return error_response(request, 422, "invalid", "; ".join(exc.messages))


@api.exception_handler(OperationalError)
def on_database_unavailable(request, exc):
    # The database went away (restart, failover): nothing was committed; the client may retry.
    logger.warning("database unavailable: %s", exc)
    from django.db import connections

    for connection in connections.all():
        connection.close_if_unusable_or_obsolete()
    response = error_response(request, 503, "unavailable", "The database is unavailable; retry shortly.")
    response["Retry-After"] = "2"
    return response


@api.exception_handler(DatabaseError)
def on_database_error(request, exc):
    logger.exception("database error")
    return error_response(request, 500, "server_error", "Internal error; it has been logged.")


def _mount_routers() -> None:
    from billing.api import router as billing_router
    from bookings.api import router as bookings_router
    from catalog.api import router as catalog_router
    from instrumentshare.accounts.api import auth_router
    from instrumentshare.accounts.api import router as accounts_router
    from instrumentshare.audit.api import router as audit_router
    from oversight.api import router as oversight_router
    from submissions.api import router as submissions_router
    from usage.api import router as usage_router

    api.add_router("/auth", auth_router)
    api.add_router("/audit", audit_router)
    api.add_router("/", accounts_router)
    api.add_router("/", catalog_router)
    api.add_router("/", bookings_router)
    api.add_router("/", submissions_router)
    api.add_router("/", usage_router)
    api.add_router("/billing", billing_router)
    api.add_router("/oversight", oversight_router)


_mount_routers()
