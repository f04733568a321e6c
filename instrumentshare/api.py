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

from instrumentshare.accounts.auth import API_AUTH, Anonymous
from instrumentshare.core.errors import DomainError
from instrumentshare.core.input_rules import NO_CONTROL_CHARACTERS

logger = logging.getLogger(__name__)

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "retry_after": {"type": "integer"},
    },
    "required": ["code", "detail"],
}
# What any operation can answer besides its own success statuses: a malformed body, a refusal, an
# object the caller may not see, invalid input (control characters, times out of bounds), a spent
# budget, a dependency down; and for writes, a conflict and a body too large; for routes that need
# a caller, 401. Each is {"code": ..., "detail": ...}.
ERROR_STATUSES = {
    400: "Malformed request (a body that is not JSON, broken multipart)",
    403: "Seen but not allowed",
    404: "Not found, or not visible to the caller",
    422: "Invalid input; `errors` names each field",
    429: "Too many requests; see Retry-After",
    503: "A dependency is unavailable; see Retry-After",
}
WRITE_STATUSES = {409: "Conflicts with the current state", 413: "Request body too large"}




class InstrumentShareAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        document_errors(schema)
        document_optional_auth(schema, self._public_operation_ids())
        document_string_rule(schema)
        return schema

    def _public_operation_ids(self) -> set[str]:
        """Operations that let a caller without credentials through (``accounts.auth.PUBLIC_AUTH``)."""
        return {operation.operation_id or self.get_openapi_operation_id(operation)
                for _prefix, router in self._routers
                for path_view in router.path_operations.values()
                for operation in path_view.operations
                if any(isinstance(callback, Anonymous) for callback in operation.auth_callbacks)}


def document_errors(schema: dict) -> None:
    """Add the error statuses every operation can answer to the OpenAPI document, once, here."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            statuses = dict(ERROR_STATUSES)
            if method != "get":
                statuses.update(WRITE_STATUSES)
            # Routes that need a caller, public ones sent a bad token, the token route sent wrong credentials.
            statuses[401] = "Not authenticated, or the credentials sent are wrong"
            for status, description in statuses.items():
                operation["responses"].setdefault(status, {"description": description, **error})


def document_optional_auth(schema: dict, public: set[str]) -> None:
    """A public operation's credentials are optional: ``{}`` first among its security requirements."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("operationId") in public and {} not in operation.get("security", []):
                operation["security"] = [{}, *operation.get("security", [])]


def document_string_rule(schema: dict) -> None:
    """Every free-text string a client sends (parameters, request bodies and the schemas they use)
    carries the string rule as its pattern, and the keys of JSON bodies too (``propertyNames``);
    responses may echo anything and are left alone."""
    components = schema.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/components/schemas/"):
                name = reference.rsplit("/", 1)[1]
                if name not in seen and name in components:
                    seen.add(name)
                    walk(components[name])
            if node.get("type") == "string" and not {"pattern", "enum", "const", "format"} & node.keys():
                node["pattern"] = NO_CONTROL_CHARACTERS
            if keys and node.get("type") == "object" and "propertyNames" not in node:
                node["propertyNames"] = {"pattern": NO_CONTROL_CHARACTERS}  # keys obey the rule too
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    keys = False
    for operations in schema["paths"].values():
        for operation in operations.values():
            walk(operation.get("parameters", []))
            for content_type, content in operation.get("requestBody", {}).get("content", {}).items():
                # A JSON body's keys reach the rule as written; a multipart field name is the
                # multipart parser's to read (a malformed part may never reach the rule at all).
                keys = content_type == "application/json"
                walk(content)
                keys = False


api = InstrumentShareAPI(
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

    # Django tries the routers' patterns in this order, one by one; the bookings' come first, as the
    # busiest (a booking request matched after the accounts' and catalog's some sixty patterns). No path
    # of one router can match another's (tests/api/test_routes.py), so the order changes no answer.
    api.add_router("/", bookings_router)
    api.add_router("/auth", auth_router)
    api.add_router("/audit", audit_router)
    api.add_router("/", accounts_router)
    api.add_router("/", catalog_router)
    api.add_router("/", submissions_router)
    api.add_router("/", usage_router)
    api.add_router("/billing", billing_router)
    api.add_router("/oversight", oversight_router)


_mount_routers()
